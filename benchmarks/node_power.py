"""The node's power-relevant CPU figures, for sizing a station's solar panel (issue 14).

Usage: python -m benchmarks.node_power [--shared ../shared] [--copies 3] [--idle-s 60]

1. CPU seconds per image of the default detector configuration: `wildwatch edge scan` runs as a
   separate process over the shared images copied `--copies` times, and once over one image;
   the CPU time of each (user + system, from wait4, all threads) gives the cost of one more image
   without the start-up (model loading), and the start-up itself.
2. Idle CPU of a running node: `wildwatch edge run` starts as a separate process with one camera
   whose drop folder stays empty, connected to a real Mosquitto on a free loopback port, with the
   default poll interval and heartbeat; once it is up, its CPU time (with that of the children
   it waited for) is read from /proc/<pid>/stat over `--idle-s` seconds. Printed as % of one
   core and CPU seconds per hour.
3. CPU per trigger of that running node: the shared images are moved into its drop folder at
   once, and its CPU time until the folder is empty again (every file processed, its evidence
   saved, its events stored and published, the file archived), less the idle rate over that
   time, is divided by the number of images.

The figures are this machine's, printed with its processor: not a Raspberry Pi's. Not a test:
figures vary by machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from models.registry import STORE_ENV, import_dir
from tests.helpers import MosquittoServer, free_port, wait_for

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
READY_LINE = "running with"  # edge.app.run logs it once the node is up
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Scan:
    """One `edge scan` process."""

    images: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def machine() -> str:
    """Processor model, architecture and cores of this machine."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model or 'unknown CPU'}, {platform.machine()}, {os.cpu_count()} cores"


def write_config(path: Path, data: dict[str, object]) -> Path:
    """A node YAML at `path`."""
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def scan(images: Path, config: Path, env: dict[str, str]) -> Scan:
    """Run one `edge scan` process over `images`; its wall time, CPU time and peak RSS."""
    n = sum(1 for _ in images.glob("*.jpg"))
    cmd = [sys.executable, "-m", "wildwatch", "edge", "scan", str(images), "--config", str(config)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"edge scan failed:\n{err[-2000:]}")
    return Scan(n, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def cpu_ticks(pid: int) -> int:
    """CPU time of a process (all its threads) and of the children it waited for (e.g. the
    `chronyc` it runs for its clock offset), in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime: 14-17 of proc(5)


def rss_mb(pid: int) -> float:
    """Resident memory of a process now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class NodeRun:
    """A running `edge run` process, idle and then busy."""

    idle_cpu_s: float  # over idle_s
    idle_s: float
    startup_cpu_s: float
    rss_mb: float
    triggers: int
    busy_cpu_s: float  # CPU over the triggers' processing, less the idle rate over that time
    busy_wall_s: float


def running_node(root: Path, store: Path, idle_s: float, images: list[Path]) -> NodeRun:
    """Start a real node with an empty drop folder and measure it idle; then drop `images` in
    and measure the CPU until the folder is empty again (all processed and archived)."""
    broker_dir = root / "mosquitto"
    broker_dir.mkdir()
    broker = MosquittoServer(broker_dir, free_port())
    broker.start()
    log_path = root / "node.log"
    drop = root / "drop" / "cam1"
    config = write_config(
        root / "node.yaml",
        {
            "site": "bench",
            "node": "idle",
            "model_store": str(store),
            "data_dir": str(root / "node-data"),
            "mqtt": {"host": "127.0.0.1", "port": broker.port},
            "cameras": [{"id": "cam1", "drop_folder": str(drop)}],
        },
    )
    # -v as the systemd unit runs it (hardware/systemd/wildwatch-edge.service): INFO logging
    cmd = [sys.executable, "-m", "wildwatch", "-v", "edge", "run", "--config", str(config)]
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            try:
                started = wait_for(
                    lambda: (
                        READY_LINE in log_path.read_text(errors="replace")
                        or proc.poll() is not None
                    ),
                    120,
                    0.2,
                )
                if not started or proc.poll() is not None:
                    raise SystemExit(f"node did not start:\n{log_path.read_text()[-2000:]}")
                time.sleep(5.0)  # let start-up work (first heartbeat, status) settle
                startup = cpu_ticks(proc.pid) / TICKS
                t0, c0 = time.monotonic(), cpu_ticks(proc.pid)
                time.sleep(idle_s)
                t1, c1 = time.monotonic(), cpu_ticks(proc.pid)
                rss = rss_mb(proc.pid)
                idle_rate = (c1 - c0) / TICKS / (t1 - t0)
                staging = root / "staging"
                staging.mkdir()
                for p in images:
                    shutil.copy2(p, staging / p.name)
                t2, c2 = time.monotonic(), cpu_ticks(proc.pid)
                for p in images:
                    os.replace(staging / p.name, drop / p.name)
                if not wait_for(lambda: not any(drop.iterdir()), 600, 0.1):
                    raise SystemExit(f"node did not finish:\n{log_path.read_text()[-2000:]}")
                t3, c3 = time.monotonic(), cpu_ticks(proc.pid)
            finally:
                proc.terminate()
                proc.wait(30)
    finally:
        broker.stop()
    busy = (c3 - c2) / TICKS - idle_rate * (t3 - t2)
    return NodeRun(
        idle_cpu_s=idle_rate * idle_s,
        idle_s=idle_s,
        startup_cpu_s=startup,
        rss_mb=rss,
        triggers=len(images),
        busy_cpu_s=busy,
        busy_wall_s=t3 - t2,
    )


def main() -> None:
    """Scan the shared images twice (many and one), then watch an idle node; print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--idle-s", type=float, default=60.0)
    args = parser.parse_args()
    print(f"machine: {machine()} -- this machine's figures, not a Raspberry Pi's")
    with tempfile.TemporaryDirectory(prefix="node_power_") as tmp:
        root = Path(tmp)
        store = root / "store"
        import_dir(args.shared / "models", store)
        env = dict(os.environ, **{STORE_ENV: str(store)})
        sources = sorted((args.shared / "data" / "images").glob("*.jpg"))
        many, one = root / "many", root / "one"
        many.mkdir()
        one.mkdir()
        for k in range(args.copies):
            for p in sources:
                shutil.copy2(p, many / f"c{k}_{p.name}")
        shutil.copy2(sources[0], one / sources[0].name)
        config = write_config(
            root / "scan.yaml",
            {
                "site": "bench",
                "node": "scan",
                "data_dir": str(root / "scan-data"),
                "cameras": [{"id": "images"}],
            },
        )
        big, small = scan(many, config, env), scan(one, config, env)
        per_image = (big.cpu_s - small.cpu_s) / (big.images - small.images)
        print(
            f"default detector, `wildwatch edge scan` over {big.images} shared images "
            f"({args.copies} x {len(sources)}): {big.cpu_s:.1f} CPU s, {big.wall_s:.1f} s wall, "
            f"peak RSS {big.peak_rss_mb:.0f} MB"
        )
        print(
            f"  over 1 image (start-up and model loading): {small.cpu_s:.1f} CPU s, "
            f"{small.wall_s:.1f} s wall"
        )
        print(
            f"  CPU seconds per image: {per_image:.3f} (without start-up); "
            f"{big.cpu_s / big.images:.3f} including it; wall "
            f"{(big.wall_s - small.wall_s) / (big.images - small.images) * 1000:.0f} ms/image"
        )
        print(f"  at 1,000 triggers/day: {per_image * 1000:.0f} CPU s/day busy")
        node = running_node(root, store, args.idle_s, sources)
        idle = node.idle_cpu_s
        print(
            f"idle node (`wildwatch -v edge run`, empty drop folder, poll 2 s, heartbeat 60 s) "
            f"over {node.idle_s:.0f} s: {idle:.2f} CPU s = {100 * idle / node.idle_s:.2f} % of "
            f"one core = {idle * 3600 / node.idle_s:.0f} CPU s/hour; RSS {node.rss_mb:.0f} MB; "
            f"start-up took {node.startup_cpu_s:.1f} CPU s"
        )
        per_trigger = node.busy_cpu_s / node.triggers
        print(
            f"the same node given the {node.triggers} shared images in its drop folder: "
            f"{node.busy_cpu_s:.1f} CPU s above idle in {node.busy_wall_s:.1f} s = "
            f"{per_trigger:.3f} CPU s per trigger (detector, classifier, rules, evidence "
            "images, outbox, publishing)"
        )
        day = per_trigger * 1000 + idle * 86400 / node.idle_s
        print(
            f"one day at 1,000 triggers: {day:.0f} CPU s = {100 * day / 86400:.2f} % of one core "
            "on average (this machine)"
        )
        print(
            "Raspberry Pi factor: not measured here and no published figure for this pipeline "
            "was found; run this script on the Pi (same command) for its own figures"
        )


if __name__ == "__main__":
    main()
