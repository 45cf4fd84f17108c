"""`wildwatch demo`: the whole system on one machine, in one command, with no external services.

embedded broker (amqtt) <- edge node (drop folder, YOLOX, rules, outbox) -> central (SQLite,
ingest, the duty pager with a demo duty officer on the roster and the file as its SMS provider,
daily report). The sample images are restamped as if the camera trap had taken
them during the current reporting day, so that they land in today's 15:00 report.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import click
import sqlalchemy as sa
from PIL import Image

from broker.embedded import EmbeddedBroker
from central import accounts, roster
from central.app import CentralService
from central.config import CentralConfig
from central.reports.daily import produce, report_day_for
from edge.app import EdgeNode
from edge.config import NodeConfig, parse_config
from edge.detect import create as create_detector
from edge.ingest import IMAGE_SUFFIXES
from models.registry import RegistryError

log = logging.getLogger(__name__)

SITE = "changxing"
NODE = "cx-demo-01"
CAMERA = "cx-cam-01"
DUTY_PHONE = "13800000000"
DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"
_EXIF_IFD, _DATETIME_ORIGINAL = 0x8769, 36867


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def restamp(images: list[Path], out_dir: Path, start: datetime, end: datetime) -> list[Path]:
    """Copy images with EXIF DateTimeOriginal spread evenly over [start, end) (local times)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    step = (end - start) / max(len(images), 1)
    written = []
    for i, src in enumerate(images):
        dest = out_dir / src.name
        when = start + step * i
        try:
            with Image.open(src) as im:
                exif = im.getexif()
                exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = when.strftime("%Y:%m:%d %H:%M:%S")
                im.save(dest, format="JPEG", quality=95, exif=exif.tobytes())
        except OSError:
            shutil.copy2(src, dest)  # not decodable: the node must quarantine it, as it would
        written.append(dest)
    return written


def run_demo(*, images: Path | None, workdir: Path, timeout_s: float) -> int:
    """Run the demo; returns the process exit code."""
    src = images or DEFAULT_IMAGES
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        print(f"没有图像 no images in {src}")
        return 2
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    port = _free_port()

    central_cfg = CentralConfig.model_validate(
        {
            "data_dir": str(workdir / "central"),
            "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "wildwatch-central-demo"},
            "sites": {
                SITE: {
                    "name_zh": "长兴扬子鳄国家级自然保护区",
                    "name_en": "Changxing Chinese Alligator National Nature Reserve",
                }
            },
            "report": {"station_name": "长兴扬子鳄国家级自然保护区监测站"},
            "alerts": {
                # The demo does not wait for more of the same before the first message.
                "escalation": {"group_wait_s": 0},
                "providers": [{"type": "file", "path": str(workdir / "central" / "sms.jsonl")}],
            },
        }
    )
    node_cfg: NodeConfig = parse_config(
        {
            "site": SITE,
            "node": NODE,
            "data_dir": str(workdir / "edge"),
            "mqtt": {"host": "127.0.0.1", "port": port},
            "cameras": [
                {"id": CAMERA, "name_zh": "演示相机", "drop_folder": str(workdir / "drop")}
            ],
            "poll_s": 0.3,
            "settle_s": 0.3,
            "quarantine_grace_s": 1.0,  # copied whole: a file that does not decode is broken
            "heartbeat_s": 5,
        },
        "demo",
    )

    tz = node_cfg.tz
    now = datetime.now(tz)
    day = report_day_for(now, central_cfg)
    cutoff = central_cfg.report.cutoff_time
    window_start = datetime.combine(day - timedelta(days=1), cutoff, tz)
    staged = restamp(
        files,
        workdir / "card",
        window_start + timedelta(minutes=10),
        min(now, window_start + timedelta(days=1)) - timedelta(minutes=1),
    )

    try:
        detector = create_detector(node_cfg.detector, node_cfg.model_store)
    except RegistryError as exc:
        print(f"模型未安装 model missing: {exc}")
        return 2
    broker = EmbeddedBroker(port)
    broker.start()
    central = CentralService(central_cfg, serve_http=False)
    central.start()
    _put_on_duty(central)
    node = EdgeNode(node_cfg, detector=detector)
    t0 = time.monotonic()
    try:
        node.start()
        if not node.link.wait_connected(30):
            print("边缘节点无法连接代理 edge node could not connect to the broker")
            return 1
        drop = workdir / "drop"
        for path in staged:  # a card import: each file appears whole (rename)
            path.rename(drop / path.name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            handled = node.processed + node.quarantined + node.duplicates
            if (
                handled == len(staged)
                and node.publisher.drained()
                and central.stored_events() >= node.outbox.last_seq()
            ):
                break
            time.sleep(0.2)
        else:
            print(
                f"超时 timeout: {node.processed} processed, outbox {node.outbox.depth()}, "
                f"central {central.stored_events()} / {node.outbox.last_seq()}"
            )
            return 1
        elapsed = time.monotonic() - t0
        made = node.outbox.last_seq()
        stored = central.stored_events()
        _wait_paged(central, deadline)
    finally:  # central first, or the node's going offline would be reported as an outage
        central.stop()
        node.stop()
        broker.stop()

    written = build_daily_report_for(central_cfg, day)
    summary = _summary(central_cfg)
    sms = workdir / "central" / "sms.jsonl"
    sms_lines = sms.read_text(encoding="utf-8").splitlines() if sms.exists() else []
    print("== WildWatch 演示 demo ==")
    print(
        f"图像 images: {len(staged)} (processed {node.processed}, quarantined "
        f"{node.quarantined}) in {elapsed:.1f}s"
    )
    print("检测 detections by category: " + _fmt(summary["detections"]))
    print("事件 events: " + _fmt(summary["events"]) + f"  (made {made}, stored centrally {stored})")
    print(f"短信 SMS sent: {len(sms_lines)} -> {sms}")
    for line in sms_lines[:5]:
        print("   " + json.loads(line)["text"])
    print(f"日报 daily report {day}: " + "  ".join(str(p) for p in written))
    return 0 if stored == made else 1


def _put_on_duty(central: CentralService) -> None:
    """A demo duty officer on the roster around the clock (the pager pages the roster)."""
    assert central.session_factory is not None
    now = datetime.now(UTC)
    with central.session_factory.begin() as session:
        accounts.create_user(
            session=session,
            name="duty-demo",
            password=secrets.token_urlsafe(16),
            role=accounts.Role.STAFF,
            sites=[SITE],
            known_sites=central.config.sites,
            display_name="值班员（演示）",
            phone=DUTY_PHONE,
            now=now,
        )
        for start, end in ((dtime(0), dtime(12)), (dtime(12), dtime(0))):
            roster.add_shift(
                session=session,
                site=SITE,
                role=roster.DutyRole.DUTY,
                user_name="duty-demo",
                day_kind=roster.DayKind.ANY,
                start=start,
                end=end,
            )


def _wait_paged(central: CentralService, deadline: float) -> None:
    """Until the pager has sent what the stored events called for (or the deadline)."""
    from central.db.models import Alert, AlertNotification

    assert central.session_factory is not None
    while time.monotonic() < deadline:
        with central.session_factory() as session:
            waiting = session.scalar(
                sa.select(sa.func.count())
                .select_from(AlertNotification)
                .where(AlertNotification.state.in_(["pending", "sending"]))
            ) or session.scalar(
                sa.select(sa.func.count()).select_from(Alert).where(Alert.state == "triggered")
            )
        if not waiting:
            return
        time.sleep(0.2)


def _fmt(counter: Counter[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items())) or "-"


def build_daily_report_for(config: CentralConfig, day: date) -> tuple[Path, ...]:
    """Compile and write the daily report of `day`: JSON, XLSX and (with a CJK font) PDF."""
    from central.db.session import make_engine, make_session_factory

    engine = make_engine(config.database_url)
    try:
        with make_session_factory(engine)() as session:
            return produce(
                session=session, config=config, day=day, out_dir=config.report_dir, reports={}
            )
    finally:
        engine.dispose()


def _summary(config: CentralConfig) -> dict[str, Counter[str]]:
    """Counts from the central database: detections (boxes) per category, events per rule."""
    import sqlalchemy as sa

    from central.db.models import Event
    from central.db.session import make_engine

    engine = make_engine(config.database_url)
    detections: Counter[str] = Counter()
    events: Counter[str] = Counter()
    try:
        with engine.connect() as conn:
            for kind, category, rule, count in conn.execute(
                sa.select(Event.kind, Event.category, Event.rule, Event.count)
            ):
                if kind == "observation":
                    detections[category] += count
                events[rule or kind] += 1
    finally:
        engine.dispose()
    return {"detections": detections, "events": events}


@click.command("demo")
@click.option(
    "--images",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="images to feed the node (default ../shared/data/images)",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default="wildwatch-demo",
    show_default=True,
    help="where the demo writes its database, reports and SMS",
)
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="seconds to wait for every event to arrive centrally",
)
def demo_cmd(images: Path | None, workdir: Path, timeout: float) -> None:
    """一键演示 Run the whole system on this machine with no external services: an embedded broker
    (amqtt), central on SQLite and one edge node fed with the sample images; wait until every
    event arrived, write the daily report and the SMS outbox, print a summary."""
    raise SystemExit(run_demo(images=images, workdir=workdir, timeout_s=timeout))
