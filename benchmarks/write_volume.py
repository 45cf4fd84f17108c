"""What a node writes to its SD card or data disk per day at 1,000 camera-trap triggers (issue 14).

Usage: python -m benchmarks.write_volume [--shared ../shared] [--triggers 1000]
       [--no-event-share 0.7] [--no-loop]

Part 1, the real node: a real `EdgeNode` (default detector, real Mosquitto on a free loopback
port acknowledging every event) is fed `--triggers` real camera-trap images, one at a time, from
a staging folder on the data file system into its drop folder (a rename, as when the camera's
FTP server writes into a drop folder on the data partition). Each image gets a capture time of
its own, spread over one day, so each trigger is a burst of its own as at 1,000 triggers a day.
After each trigger is processed and acknowledged, the page cache is written back (`sync`): at
1,000 triggers a day they are ~86 s apart, longer than ext4's 5 s commit and Linux's 30 s dirty
expiry, so nothing of one trigger's writes is merged with the next one's in real life either.

The mix (stated, not measured from a station): `--no-event-share` of the triggers are frames on
which the default detector finds nothing (the stand-ins for empty triggers: wind, sun, rain; about
three quarters of camera-trap images are empty in large surveys such as Snapshot Serengeti); the
rest cycle through every other shared image (animals, birds, dogs, a person, a vehicle, and the
empty night frame the detector sees false boxes in). Events, evidence and rule state are whatever
the real node makes of them.

Each writer gets a loop-mounted ext4 file system of its own (we are root here), so that the
block-layer writes of each are counted separately from /sys/block/loopN/stat, ext4's journal
included: the outbox (outbox.db and its WAL, linked from data_dir), the evidence images, the
evidence index (index.db, linked from the evidence folder), and the rest of data_dir (rule state,
the archive's renames, folders). Where loop mounts are refused, everything shares one temporary
folder and only the process's own /proc/self/io `write_bytes` total is printed.

Part 2, the outbox's SQLite settings: the events the node stored are replayed through the real
`Outbox` under a clock that moves 86.4 s per trigger, with evidence uploads queued and progressed
in 256 KiB chunks and acknowledged events pruned after RETAIN_ACKED_S (two days are replayed
first, so the third, measured day prunes as much as it adds), once per settings variant.

Part 3, the evidence index's SQLite settings: the node's evidence saves (as many files per event
trigger as it saved) and each file's upload mark are replayed through the real `EvidenceStore`,
a day to start from and a second day measured, once per settings variant.
Not a test: figures vary by machine and file system; an SD card's own write amplification is not
seen by the kernel and is an assumption in the wear estimate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

import edge.outbox.sqlite as outbox_module
from broker.payloads import Category, EventPayload, Severity
from edge.app import RETAIN_ACKED_S, EdgeNode
from edge.detect import Detection
from edge.evidence import INDEX_NAME, EvidenceStore
from edge.outbox import Outbox
from edge.outbox.sqlite import EvidenceUpload
from edge.rules.state import STATE_FILE
from models.registry import import_dir
from tests.factories import node_config, stamp_copy
from tests.helpers import MosquittoServer, free_port, wait_for

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
PER_DAY = 1000  # triggers a day the figures are scaled to
DAY_S = 24 * 3600.0
# Frames on which the default detector finds nothing: the stand-ins for empty triggers.
NO_EVENT_FRAMES = ("ct_ena24_4330.jpg", "ct_ecoassist_person.jpg")
UPLOAD_CHUNK = 256 * 1024  # EvidenceUploadSettings.chunk_kib's default
# SD-card wear context (assumptions, printed with the result).
CARD_GB = 32
PE_CYCLES = 3000  # MLC-class high-endurance card; TLC consumer cards are often nearer 500-1000
WRITE_AMPLIFICATION = 4.0  # small synchronous 4 KiB writes on a card's FTL; unknown per card


@dataclass
class Disk:
    """One writer's file system: a loop-mounted ext4 image (or a plain folder as fallback)."""

    path: Path
    device: str | None = None  # loopN when mounted

    def written(self) -> int | None:
        """Bytes written to the block device so far (sectors x 512), None without a device."""
        if self.device is None:
            return None
        fields = Path(f"/sys/block/{self.device}/stat").read_text().split()
        return int(fields[6]) * 512


@contextmanager
def loop_disk(image: Path, mount: Path, size_mb: int) -> Iterator[Disk]:
    """An ext4 file system in `image`, mounted noatime at `mount` (as a Pi's data partition)."""
    mount.mkdir(parents=True, exist_ok=True)
    with image.open("wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    # No lazy init: ext4lazyinit would otherwise write inode tables during the measurement.
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image)],
        check=True,
    )
    subprocess.run(["mount", "-o", "loop,noatime", str(image), str(mount)], check=True)
    try:
        source = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", str(mount)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        yield Disk(mount, Path(source).name)
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)  # detach when all close
        image.unlink(missing_ok=True)


def can_loop_mount(root: Path) -> bool:
    """True when this process may make and mount an ext4 image (root, loop devices)."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        return False
    try:
        with loop_disk(root / "probe.img", root / "probe", 16):
            return True
    except (subprocess.CalledProcessError, OSError):
        return False


def proc_io() -> dict[str, int]:
    """This process's I/O counters (write_bytes: block-layer writes it caused; wchar: write())."""
    pairs = (line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return {k: int(v) for k, v in pairs}


def mb_day(nbytes: float, triggers: int) -> float:
    """Bytes measured over `triggers` triggers, as MB per day at PER_DAY triggers."""
    return nbytes * PER_DAY / triggers / 1e6


def file_bytes(paths: Iterable[Path]) -> int:
    """Total size of the files that exist."""
    return sum(p.stat().st_size for p in paths if p.exists())


# -- part 1: the real node ---------------------------------------------------------------------


@dataclass
class NodeRun:
    """What part 1 measured."""

    triggers: int
    written: dict[str, int | None]  # writer -> block-device bytes
    io: dict[str, int]  # /proc/self/io deltas
    evidence_files: int
    evidence_bytes: int
    incoming_bytes: int  # the staged images: what the camera's upload wrote into the drop folder
    arrival_bytes: int  # the file-system metadata of moving them into the drop folder
    events: int
    triggers_with_events: int
    outbox_db: int
    outbox_wal: int
    index_db: int
    rules_db: int
    # every stored event, by the file it came from (replayed in part 2)
    payloads: dict[str, list[bytes]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # file names in trigger order


def stage(shared: Path, dest: Path, n: int, no_event_share: float, tz_name: str) -> list[str]:
    """Copy `n` images into `dest`, each with its own capture time over the last day."""
    from zoneinfo import ZoneInfo

    images = sorted((shared / "data" / "images").glob("*.jpg"))
    quiet = [p for p in images if p.name in NO_EVENT_FRAMES]
    busy = [p for p in images if p.name not in NO_EVENT_FRAMES]
    dest.mkdir(parents=True)
    start = datetime.now(ZoneInfo(tz_name)).replace(tzinfo=None) - timedelta(days=1)
    names: list[str] = []
    n_quiet = round(n * no_event_share)
    for i in range(n):
        # spread the no-event triggers evenly among the others
        is_quiet = (i + 1) * n_quiet // n > i * n_quiet // n
        pool = quiet if is_quiet else busy
        source = pool[i % len(pool)]
        name = f"T{i:05d}_{source.name}"
        stamp_copy(source, dest / name, start + timedelta(seconds=i * DAY_S / n))
        names.append(name)
    return names


def stop_node(node: EdgeNode) -> None:
    """Stop the node and close its rule state too (stop leaves that to the process's end)."""
    node.stop()
    if node.pipeline.rule_state is not None:
        node.pipeline.rule_state.close()


def run_node(shared: Path, root: Path, n: int, no_event_share: float, loops: bool) -> NodeRun:
    """Feed `n` triggers through a real node; measure each writer's file system."""
    store = root / "store"
    import_dir(shared / "models", store)
    (root / "mosquitto").mkdir()
    broker = MosquittoServer(root / "mosquitto", free_port())
    with ExitStack() as stack:
        disks: dict[str, Disk] = {}
        if loops:
            disks["data_dir"] = stack.enter_context(
                loop_disk(root / "main.img", root / "main", 2048)
            )
            main = disks["data_dir"].path
            data = main / "data"
            (data / "evidence").mkdir(parents=True)
            disks["evidence images"] = stack.enter_context(
                loop_disk(root / "evidence.img", data / "evidence", 1024)
            )
            disks["outbox"] = stack.enter_context(
                loop_disk(root / "outbox.img", root / "outbox", 256)
            )
            disks["evidence index"] = stack.enter_context(
                loop_disk(root / "index.img", root / "index", 256)
            )
            disks["rule state"] = stack.enter_context(
                loop_disk(root / "rules.img", root / "rules", 256)
            )
            # Each SQLite file on a file system of its own: SQLite follows the link and keeps
            # the -wal and -shm beside the target.
            for disk, link in (
                (disks["outbox"], data / "outbox.db"),
                (disks["evidence index"], data / "evidence" / INDEX_NAME),
                (disks["rule state"], data / STATE_FILE),
            ):
                (disk.path / link.name).touch()
                link.symlink_to(disk.path / link.name)
        else:
            main = root / "main"
            data = main / "data"
            (data / "evidence").mkdir(parents=True)
        config = node_config(
            data,
            store,
            mqtt={"port": broker.port},
            cameras=[{"id": "cam1", "drop_folder": str(main / "drop" / "cam1")}],
            poll_s=0.05,
            settle_s=0.0,
        )
        staged = stage(shared, main / "staging", n, no_event_share, config.timezone)
        incoming = file_bytes(main / "staging" / name for name in staged)
        broker.start()
        stack.callback(broker.stop)
        node = EdgeNode(config)
        node.start()
        stack.callback(stop_node, node)
        drop = main / "drop" / "cam1"
        drop.mkdir(parents=True, exist_ok=True)
        if not wait_for(lambda: node.link.connected, 30):
            raise SystemExit("the node did not connect to mosquitto")
        os.sync()
        before = {k: d.written() for k, d in disks.items()}
        io_before = proc_io()
        main_disk = disks.get("data_dir")
        arrival = 0  # the staging rename's metadata: stands in for the camera's upload
        for i, name in enumerate(staged):
            at = main_disk.written() if main_disk is not None else None
            os.rename(main / "staging" / name, drop / name)
            os.sync()
            now = main_disk.written() if main_disk is not None else None
            if at is not None and now is not None:
                arrival += now - at
            done = i + 1

            def finished(done: int = done) -> bool:
                left = node.processed + node.duplicates + node.quarantined
                return left >= done and node.outbox.depth() == 0

            if not wait_for(finished, 60, 0.01):
                raise SystemExit(f"trigger {i} ({name}) not processed and acknowledged in 60 s")
            os.sync()  # the ~86 s between two triggers: everything reaches the disk
        io_after = proc_io()
        after = {k: d.written() for k, d in disks.items()}
        written: dict[str, int | None] = {}
        for k in disks:
            b, a = before[k], after[k]
            written[k] = None if a is None or b is None else a - b
        if written.get("data_dir") is not None:
            written["data_dir"] = (written["data_dir"] or 0) - arrival
        jpgs = [p for p in (data / "evidence").rglob("*.jpg")]
        outbox_path = (data / "outbox.db").resolve()
        index_path = (data / "evidence" / INDEX_NAME).resolve()
        rules_path = (data / STATE_FILE).resolve()
        with closing(sqlite3.connect(f"file:{outbox_path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT payload FROM outbox ORDER BY seq").fetchall()
        payloads: dict[str, list[bytes]] = defaultdict(list)
        for (payload,) in rows:
            ev = EventPayload.model_validate_json(payload)
            payloads[ev.source or ""].append(bytes(payload))
        return NodeRun(
            triggers=n,
            written=written,
            io={k: io_after[k] - io_before[k] for k in io_after},
            evidence_files=len(jpgs),
            evidence_bytes=file_bytes(jpgs),
            incoming_bytes=incoming,
            arrival_bytes=arrival,
            events=len(rows),
            triggers_with_events=sum(1 for name in staged if payloads.get(name)),
            outbox_db=file_bytes([outbox_path]),
            outbox_wal=file_bytes([outbox_path.with_name(outbox_path.name + "-wal")]),
            index_db=file_bytes([index_path, index_path.with_name(index_path.name + "-wal")]),
            rules_db=file_bytes([rules_path, rules_path.with_name(rules_path.name + "-wal")]),
            payloads=dict(payloads),
            order=staged,
        )


# -- part 2: the outbox's SQLite settings, replayed ----------------------------------------------


class _Clock:
    """Stands in for the `time` module inside edge.outbox.sqlite: the replay's day moves fast."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now


@dataclass(frozen=True)
class Variant:
    """Outbox SQLite settings to compare."""

    name: str
    pragmas: tuple[str, ...] = ()
    page_size: int | None = None
    note: str = ""


VARIANTS = (
    Variant("current", (), note="WAL, synchronous=FULL, autocheckpoint 1000 pages, 1 KiB pages"),
    Variant("page-4096", page_size=4096, note="SQLite's default page, the outbox's until now"),
    Variant("page-2048", page_size=2048, note="2 KiB pages"),
    Variant(
        "normal", ("PRAGMA synchronous=NORMAL",), note="may lose the last commits on power cut"
    ),
    Variant("ckpt-100", ("PRAGMA wal_autocheckpoint=100",), note="checkpoint 10x as often"),
    Variant("ckpt-10000", ("PRAGMA wal_autocheckpoint=10000",), note="a WAL 10x as long"),
    Variant("rollback-journal", ("PRAGMA journal_mode=TRUNCATE",), note="no WAL: for contrast"),
)


@dataclass
class Replayed:
    """One variant's measured day."""

    variant: Variant
    written: int | None
    write_bytes: int
    db_bytes: int
    wal_bytes: int


def replay_day(
    outbox: Outbox,
    clock: _Clock,
    order: list[str],
    payloads: dict[str, list[bytes]],
    *,
    sync_each: bool,
) -> None:
    """One day of the node's outbox work: store, acknowledge, upload evidence, prune."""
    step = DAY_S / len(order)
    for name in order:
        clock.now += step
        events = [
            EventPayload.model_validate_json(p).model_copy(update={"event_id": uuid.uuid4()})
            for p in payloads.get(name, [])
        ]
        uploads = [
            EvidenceUpload(
                str(ev.event_id), ref.name, f"/data/evidence/{ref.name}", ref.sha256, ref.size
            )
            for ev in events
            for ref in ev.evidence
        ]
        outbox.add(
            events,
            media_sha256=uuid.uuid4().hex + uuid.uuid4().hex,
            media_path=f"/srv/wildwatch/drop/cam1/{name}",
            evidence=uploads,
        )
        outbox.remove(e.seq for e in outbox.pending())  # the broker's PUBACKs
        for up in outbox.evidence_pending(now=clock.now):
            for offset in range(UPLOAD_CHUNK, up.size + UPLOAD_CHUNK, UPLOAD_CHUNK):
                outbox.evidence_progress(up.id, uploaded=min(offset, up.size), restarts=0)
            outbox.evidence_finish(up.id, outbox_module.UPLOAD_DONE)
        if sync_each:
            os.sync()


def replay(variant: Variant, folder: Path, disk: Disk | None, run: NodeRun) -> Replayed:
    """Two days to reach the steady state (retained rows pruned as fast as added), then the
    measured third day, each trigger synced."""
    folder.mkdir(parents=True)
    path = folder / "outbox.db"
    if variant.page_size is not None:
        with closing(sqlite3.connect(path)) as db:
            db.execute(f"PRAGMA page_size={variant.page_size}")
            db.execute("VACUUM")
    clock = _Clock(time.time() - 3 * DAY_S)
    setattr(outbox_module, "time", clock)  # noqa: B010 - the module attribute, for this replay
    try:
        outbox = Outbox(path, retain_acked_s=RETAIN_ACKED_S)
        for pragma in variant.pragmas:
            outbox._db.execute(pragma)
        for _ in range(2):
            replay_day(outbox, clock, run.order, run.payloads, sync_each=False)
        os.sync()
        before = disk.written() if disk is not None else None
        io_before = proc_io()["write_bytes"]
        replay_day(outbox, clock, run.order, run.payloads, sync_each=True)
        io_after = proc_io()["write_bytes"]
        after = disk.written() if disk is not None else None
        db_bytes = file_bytes([path])
        wal_bytes = file_bytes([path.with_name("outbox.db-wal")])
        outbox.close()
    finally:
        setattr(outbox_module, "time", time)  # noqa: B010 - back to the time module
    written = None if before is None or after is None else after - before
    return Replayed(variant, written, io_after - io_before, db_bytes, wal_bytes)


# -- part 3: the evidence index's SQLite settings, replayed ------------------------------------


@dataclass(frozen=True)
class IndexVariant:
    """Evidence-index SQLite settings to compare."""

    name: str
    pragmas: tuple[str, ...] = ()
    page_size: int | None = None
    note: str = ""


INDEX_VARIANTS = (
    IndexVariant("current", note="WAL, synchronous FULL (SQLite's default), 1 KiB pages"),
    IndexVariant("page-4096", page_size=4096, note="SQLite's default page, the index's until now"),
    IndexVariant("normal", ("PRAGMA synchronous=NORMAL",), note="may lose the last rows"),
)


def replay_index(
    variant: IndexVariant, folder: Path, disk: Disk | None, run: NodeRun
) -> tuple[int | None, int]:
    """The evidence index's work through the real EvidenceStore: a save per event trigger
    (frame + one crop per box, as many files as the node saved) and the upload mark of each
    file; one day to start from, the second day measured. The pictures are tiny and kept off
    the measured file system (only index.db, linked, is on it). Returns (device bytes, process
    write_bytes)."""
    images = folder / "evidence"
    images.mkdir(parents=True)
    target = (disk.path if disk is not None else folder) / f"index-{variant.name}.db"
    with closing(sqlite3.connect(target)) as db:
        if variant.page_size is not None:
            db.execute(f"PRAGMA page_size={variant.page_size}")
            db.execute("VACUUM")
    (images / INDEX_NAME).symlink_to(target)
    store = EvidenceStore(images)
    for pragma in variant.pragmas:
        store._index.execute(pragma)
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    box = Detection(8, 8, 40, 40, 0.9, 0, "animal", Category.ANIMAL)

    def day(k: int, sync_each: bool) -> None:
        for name in run.order:
            events = [EventPayload.model_validate_json(p) for p in run.payloads.get(name, [])]
            files = max((len(ev.evidence) for ev in events), default=0)
            if files == 0:
                continue
            saved = store.save(
                image=pixels,
                detections=[box] * (files - 1),
                camera="cam1",
                day=f"2026-01-{k + 1:02d}",
                stem=Path(name).stem,
                severity=max((ev.severity for ev in events), key=lambda s: Severity(s).rank),
            )
            if sync_each:
                os.sync()  # the gap until the upload
            for f in saved.saved:
                store.mark_uploaded(f.path)
            if sync_each:
                os.sync()  # the gap until the next trigger

    day(0, sync_each=False)  # the index and its WAL as after a day, not new
    os.sync()
    before = disk.written() if disk is not None else None
    io_before = proc_io()["write_bytes"]
    day(1, sync_each=True)
    io_after = proc_io()["write_bytes"]
    after = disk.written() if disk is not None else None
    store.close()
    written = None if before is None or after is None else after - before
    return written, io_after - io_before


# -- printing -----------------------------------------------------------------------------------


def print_node(run: NodeRun, loops: bool) -> float:
    """Print part 1; returns the total MB/day of WildWatch's own writes."""
    n = run.triggers
    print(
        f"Part 1: a real node, {n} triggers ({n - run.triggers_with_events} without an event, "
        f"{run.triggers_with_events} with {run.events} events), figures scaled to "
        f"{PER_DAY} triggers/day"
    )
    print(
        f"  evidence written: {run.evidence_files} files, {run.evidence_bytes / 1e6:.1f} MB "
        f"(JPEG bytes); outbox.db {run.outbox_db / 1e6:.2f} MB + WAL "
        f"{run.outbox_wal / 1e6:.2f} MB; evidence index {run.index_db / 1e6:.2f} MB; "
        f"rule state {run.rules_db / 1e6:.2f} MB (file sizes at the end)"
    )
    total = 0.0
    if loops:
        print("  block-device writes per writer (ext4, journal included), MB/day:")
        for k, v in run.written.items():
            assert v is not None
            label = k if k != "data_dir" else "rest of data_dir (archive renames, folders)"
            print(f"    {label:48} {mb_day(v, n):8.2f}")
            total += mb_day(v, n)
        print(f"    {'total, WildWatch':48} {total:8.2f}")
    else:
        total = mb_day(run.io["write_bytes"], n)
        print("  no loop mounts: one folder for all, no split per writer")
    print(
        f"  process /proc/self/io: write_bytes {mb_day(run.io['write_bytes'], n):.2f} MB/day "
        f"(pages it dirtied, no file-system journal), wchar {mb_day(run.io['wchar'], n):.2f} "
        "MB/day (write() calls, sockets and logs included)"
    )
    incoming = mb_day(run.incoming_bytes, n)
    print(
        f"  not WildWatch's, but on the same disk: the camera's upload writes each image into "
        f"the drop folder, {incoming:.0f} MB/day for these images (avg "
        f"{run.incoming_bytes / n / 1e3:.0f} kB); moving it to data_dir/archive is a rename when "
        f"the drop folder is on the data partition (assumed here: 0 bytes of data); on another "
        f"file system it would be copied, another {incoming:.0f} MB/day"
    )
    if loops:
        print(
            f"  the benchmark's own move of each image into the drop folder (standing in for the "
            f"upload's file creation) wrote {mb_day(run.arrival_bytes, n):.2f} MB/day of "
            "file-system metadata, left out of data_dir's figure above"
        )
    return total


def print_wear(total_mb_day: float, label: str) -> None:
    """The daily volume against a card's endurance, with the assumptions."""
    endurance_mb = CARD_GB * 1000 * PE_CYCLES
    years = endurance_mb / (total_mb_day * WRITE_AMPLIFICATION) / 365
    print(
        f"  SD wear, {label}: {total_mb_day:.1f} MB/day x write amplification "
        f"{WRITE_AMPLIFICATION:.0f} (assumed) = {total_mb_day * WRITE_AMPLIFICATION / 1e3:.2f} "
        f"GB/day into the flash; a {CARD_GB} GB card of {PE_CYCLES} P/E cycles "
        f"({endurance_mb / 1e6:.0f} TB) lasts ~{years:,.0f} years at this rate"
    )


def main() -> None:
    """Stage the images, run the node, replay its outbox per settings variant, print."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--triggers", type=int, default=PER_DAY)
    parser.add_argument("--no-event-share", type=float, default=0.7)
    parser.add_argument(
        "--no-loop", action="store_true", help="one plain folder, /proc/self/io totals only"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="write_volume_") as tmp:
        root = Path(tmp)
        loops = not args.no_loop and can_loop_mount(root)
        if not loops:
            print("no loop-mounted ext4 (refused or --no-loop): /proc/self/io totals only")
        started = time.perf_counter()
        run = run_node(args.shared, root, args.triggers, args.no_event_share, loops)
        node_s = time.perf_counter() - started
        total = print_node(run, loops)
        incoming = mb_day(run.incoming_bytes, run.triggers)
        print_wear(total, "WildWatch's own writes")
        print_wear(total + incoming, "with the camera's images landing on the same card")
        print(f"  (part 1 took {node_s:.0f} s)")
        print()
        print(
            f"Part 2: the outbox's SQLite settings, the node's {run.events} events replayed "
            f"(evidence uploads queued and sent in {UPLOAD_CHUNK // 1024} KiB chunks; day 3 of a "
            "steady state measured), MB/day"
        )
        print("  (each variant changes one thing from `current`, the outbox as it is now)")
        print(f"  {'variant':18} {'device':>8} {'dirtied':>8} {'db MB':>7} {'wal MB':>7}  notes")
        with ExitStack() as stack:
            disk = (
                stack.enter_context(loop_disk(root / "replay.img", root / "replay", 512))
                if loops
                else None
            )
            base = disk.path if disk is not None else root / "replay"
            for v in VARIANTS:
                r = replay(v, base / v.name, disk, run)
                dev = "-" if r.written is None else f"{mb_day(r.written, run.triggers):8.2f}"
                print(
                    f"  {v.name:18} {dev:>8} {mb_day(r.write_bytes, run.triggers):8.2f} "
                    f"{r.db_bytes / 1e6:7.2f} {r.wal_bytes / 1e6:7.2f}  {v.note}"
                )
            print()
            print(
                "Part 3: the evidence index's SQLite settings, the node's evidence saves and "
                "upload marks replayed through the real EvidenceStore, MB/day"
            )
            print("  (each variant changes one thing from `current`, the index as it is now)")
            print(f"  {'variant':18} {'device':>8} {'dirtied':>8}  notes")
            for iv in INDEX_VARIANTS:
                w, d = replay_index(iv, root / "index-replay" / iv.name, disk, run)
                dev = "-" if w is None else f"{mb_day(w, run.triggers):8.2f}"
                print(f"  {iv.name:18} {dev:>8} {mb_day(d, run.triggers):8.2f}  {iv.note}")
        print(
            "  device: block-layer writes of the file system (journal included); dirtied: the "
            "process's write_bytes"
        )


if __name__ == "__main__":
    main()
