"""`wildwatch edge ...`: run a node as a service, or scan a folder once."""

from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import ExitStack
from pathlib import Path

import click

from edge.config import ConfigError, NodeConfig, load_config, parse_config

log = logging.getLogger(__name__)


def _config_or_exit(path: Path) -> NodeConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("edge", help="边缘节点 Edge node: camera media in, events out.")
def cli() -> None:
    """Edge node commands."""
    from edge.heap import limit_heap_growth

    limit_heap_growth()


@cli.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True),
    required=True,
    help="node YAML (see edge/examples/)",
)
def run_cmd(config_path: Path) -> None:
    """Run the node as a service: watch the drop folders, detect, store events in the durable
    outbox and publish them to the broker (QoS 1; removed only after the broker acknowledged).
    The broker password is read from $WILDWATCH_NODE_MQTT_PASSWORD."""
    from edge.app import run

    run(_config_or_exit(config_path))


@cli.command("scan")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True),
    help="node YAML for site, node, detector and rules (defaults otherwise)",
)
@click.option("--camera", help="camera id for these images (default: the folder name)")
@click.option(
    "--events-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="write every event as one JSON line (the wire payload)",
)
@click.option(
    "--results-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="write per-image detections as JSON lines",
)
@click.option(
    "--md-json",
    type=click.Path(path_type=Path, dir_okay=False),
    help="write results in the MegaDetector batch output format (Timelapse, AddaxAI)",
)
@click.option(
    "--csv",
    "csv_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="write one CSV row per detection",
)
@click.option(
    "--evidence",
    type=click.Path(path_type=Path, file_okay=False),
    help="save annotated frames and crops of every frame that led to an event here",
)
def scan_cmd(
    directory: Path,
    config_path: Path | None,
    camera: str | None,
    events_out: Path | None,
    results_out: Path | None,
    md_json: Path | None,
    csv_out: Path | None,
    evidence: Path | None,
) -> None:
    """Process a folder of camera-trap images as one camera, in capture-time order (EXIF
    DateTimeOriginal, else file time), and print a summary. Corrupt files are listed, not fatal."""
    from edge.export import ImageResult
    from edge.export.megadetector import CsvWriter, MegaDetectorWriter, pipeline_thresholds
    from edge.scan import scan
    from models.registry import RegistryError

    cam = camera or re.sub(r"[^A-Za-z0-9_.-]+", "_", directory.resolve().name) or "camera"
    if config_path is not None:
        config = _config_or_exit(config_path)
    else:
        try:
            config = parse_config({"site": "local", "node": "scan", "cameras": [{"id": cam}]})
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
    with ExitStack() as stack:
        ev = stack.enter_context(events_out.open("w", encoding="utf-8")) if events_out else None
        res = stack.enter_context(results_out.open("w", encoding="utf-8")) if results_out else None
        writers: list[MegaDetectorWriter | CsvWriter] = []
        if md_json is not None:
            classifier = config.classifier.model if config.classifier.enabled else None
            thresholds = pipeline_thresholds(config.detector)
            writers.append(
                stack.enter_context(
                    MegaDetectorWriter(md_json, thresholds=thresholds, classifier=classifier)
                )
            )
        if csv_out is not None:
            writers.append(stack.enter_context(CsvWriter(csv_out)))

        def on_result(result: ImageResult) -> None:
            for writer in writers:
                writer.add(result)

        try:
            summary = scan(
                directory,
                config,
                camera=cam,
                events_out=ev,
                results_out=res,
                on_result=on_result if writers else None,
                evidence_dir=evidence,
            )
        except RegistryError as exc:  # model missing or corrupt: one clear line, no traceback
            raise click.ClickException(str(exc)) from exc
    click.echo(f"图像 images: {summary.images}  失败 failed: {len(summary.failed)}")
    click.echo(
        "检测 detections: "
        + (", ".join(f"{k}={v}" for k, v in sorted(summary.detections.items())) or "-")
    )
    click.echo(
        "事件 events: " + (", ".join(f"{k}={v}" for k, v in sorted(summary.events.items())) or "-")
    )
    for path, reason in summary.failed.items():
        click.echo(f"  失败 failed {path}: {reason}", err=True)
    if summary.images == 0 and summary.failed:
        sys.exit(1)


@cli.command("modem-reset")
@click.option(
    "--hilink",
    "url",
    required=True,
    metavar="URL",
    help='the Huawei HiLink dongle\'s web address, e.g. "http://192.168.8.1/"',
)
@click.option(
    "--username",
    help="log in first (a dongle with a locked web UI; default admin when only a password is set)",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="seconds each HTTP request may take",
)
def modem_reset_cmd(url: str, username: str | None, timeout_s: float) -> None:
    """Reboot a Huawei HiLink 4G dongle (E3372h etc.) through its web API: the command for
    link.modem_reset_command. The password, if the dongle wants one, is read from
    $WILDWATCH_HILINK_PASSWORD (never from the command line). Exit 0 once the dongle accepted
    the reboot; otherwise exit 1 with one line on stderr."""
    from edge.modem import PASSWORD_ENV, ModemResetError, reset_hilink

    password = os.environ.get(PASSWORD_ENV) or None
    if username and password is None:
        raise click.ClickException(f"--username 需要密码 needs the password in ${PASSWORD_ENV}")
    try:
        reset_hilink(url, username=username, password=password, timeout_s=timeout_s)
    except ModemResetError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"HiLink 已接受重启 the dongle at {url} accepted the reboot")
