"""Peak memory of `wildwatch edge scan` and `edge run` against the number of images.

Usage: python -m benchmarks.memory [--sizes 100 1000] [--only scan|run] [--no-exif 5]
Builds (once, cached under the temp dir) a folder of N camera-trap-like JPEGs from the shared
images: bursts of 3-5 frames 2-5 s apart, bursts 3-30 minutes apart, each burst one scene; every
file is re-encoded with a few pixels changed, so no two have the same content (the node skips
duplicate content), and carries EXIF DateTimeOriginal, except `--no-exif` of them, which keep only
their file time (the time the cache was built, as after copying a card: one burst of their own).
Then, each in a child process of its own:
  scan      `wildwatch edge scan DIR`
  scan+out  the same with --md-json F --events-out F
  run       `wildwatch edge run --config X` with a real mosquitto on a free port; the N images
            are moved into the camera's drop folder once the node is up, and the node is
            stopped (SIGTERM) when every file has left the drop folder (archive, quarantine or
            duplicates under data_dir).
Printed per run: peak RSS of the child process (ru_maxrss from wait4, i.e. the VmHWM of the
whole process: models, threads and all), wall seconds (scan: the whole command, model loading
included; run: from the move into the drop folder until the last file left it) and images/s.
Target: peak RSS flat in N, <= 300 MB for 1,000 images with the default models. No assertions.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from tests.helpers import free_port, wait_for, wait_port

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "wildwatch-bench-memory"
CACHE_VERSION = 1  # bump when the way images are made changes
START = datetime(2024, 5, 1, 5, 30, 0)  # first EXIF capture time (camera clock, local)
BURST_FRAMES = (3, 5)
FRAME_GAP_S = (2, 5)
BURST_GAP_MIN = (3, 30)
JPEG_QUALITY = 90
EXIF_IFD, DATETIME_ORIGINAL, DATETIME = 0x8769, 0x9003, 0x0132
NODE_READY = "running with"  # edge/app.py logs this once the node watches its folders
MODES = ("scan", "scan+out", "run")


def _capture_times(n: int, rng: random.Random) -> list[datetime]:
    """N capture times in camera-trap bursts."""
    times: list[datetime] = []
    t = START
    while len(times) < n:
        for _ in range(rng.randint(*BURST_FRAMES)):
            times.append(t)
            t += timedelta(seconds=rng.randint(*FRAME_GAP_S))
        t += timedelta(minutes=rng.randint(*BURST_GAP_MIN))
    return times[:n]


def _write(src: Image.Image, index: int, dest: Path, when: datetime | None) -> None:
    """`src` with a few pixels set from `index` (distinct content), EXIF time `when`."""
    im = src.copy()
    w, h = im.size
    for k in range(4):  # four pixels in a corner: invisible, but a different file
        im.putpixel(((index * 7 + k) % w, (index // w + k) % h), (index % 251, k * 60, 255 - k))
    exif = Image.Exif()
    if when is not None:
        stamp = when.strftime("%Y:%m:%d %H:%M:%S")
        exif[DATETIME] = stamp
        exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = stamp
    im.save(dest, "JPEG", quality=JPEG_QUALITY, exif=exif.tobytes() if when is not None else b"")


def build_images(shared: Path, n: int, no_exif: int, cache: Path) -> Path:
    """The cached folder of `n` images (built once); `no_exif` of them without EXIF."""
    folder = cache / f"images-n{n}-noexif{no_exif}-v{CACHE_VERSION}"
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sources = sorted(p for p in (shared / "data" / "images").iterdir() if p.is_file())
    rng = random.Random(n)
    times = _capture_times(n, rng)
    plain = set(rng.sample(range(n), min(no_exif, n)))
    start = time.perf_counter()
    scene, current, last = -1, None, None
    for i, when in enumerate(times):
        if last is None or (when - last).total_seconds() > 60:  # a new burst, a new scene
            scene += 1
            with Image.open(sources[scene % len(sources)]) as im:
                current = im.convert("RGB")
        last = when
        assert current is not None
        name = f"RCNX{i:05d}.JPG"
        _write(current, i, folder / name, None if i in plain else when)
    done.write_text(f"{n}\n")
    print(f"built {n} images in {folder} ({time.perf_counter() - start:.0f} s)", flush=True)
    return folder


def _wait_child(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, float]:
    """Reap `proc` (killed after `timeout_s`); (exit status, its peak RSS in MB)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024  # KB on Linux
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.05)


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


def measure_scan(exe: Path, images: Path, n: int, outputs: bool, work: Path) -> tuple[float, float]:
    """Peak RSS (MB) and wall seconds of one `edge scan` of `images`."""
    cmd = [str(exe), "edge", "scan", str(images)]
    if outputs:
        cmd += ["--md-json", str(work / "md.json"), "--events-out", str(work / "events.jsonl")]
    log = work / "scan.log"
    start = time.perf_counter()
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        code, peak = _wait_child(proc, timeout_s=60 + 10 * n)
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{_tail(log)}")
    return peak, wall


def _mosquitto(work: Path, port: int) -> subprocess.Popen[bytes]:
    run_as = ["user root"] if os.geteuid() == 0 else []
    conf = work / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                *run_as,
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "persistence false",
                "log_type error",
                f"log_dest file {work / 'mosquitto.log'}",
            ]
        )
        + "\n"
    )
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if not wait_port(port):
        proc.terminate()
        raise RuntimeError(f"mosquitto did not start: {work / 'mosquitto.log'}")
    return proc


def _node_yaml(work: Path, port: int, drop: Path) -> Path:
    path = work / "node.yaml"
    path.write_text(
        "site: bench\n"
        "node: mem-node\n"
        f"data_dir: {work / 'data'}\n"
        "mqtt:\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        "poll_s: 0.5\n"
        "settle_s: 1.0\n"
        "cameras:\n"
        "  - id: cam1\n"
        f"    drop_folder: {drop}\n"
    )
    return path


def _handled(data: Path) -> int:
    """Files that have left the drop folder (moved under data_dir by the node)."""
    areas = [data / a for a in ("archive", "quarantine", "duplicates")]
    return sum(
        1 for a in areas if a.is_dir() for p in a.rglob("*") if p.is_file() and p.suffix != ".txt"
    )


def measure_run(exe: Path, images: Path, n: int, work: Path) -> tuple[float, float]:
    """Peak RSS (MB) of `edge run` and seconds until it handled the `n` files moved in."""
    drop, staging = work / "drop", work / "staging"
    staging.mkdir()
    files = sorted(p for p in images.iterdir() if p.suffix == ".JPG")
    for p in files:  # same file system as the drop folder: the move below is a rename
        try:
            os.link(p, staging / p.name)
        except OSError:
            shutil.copy2(p, staging / p.name)
    port = free_port()
    broker = _mosquitto(work, port)
    env = {k: v for k, v in os.environ.items() if k != "WILDWATCH_NODE_MQTT_PASSWORD"}
    env["WILDWATCH_LOG_LEVEL"] = "INFO"
    log = work / "node.log"
    try:
        with log.open("wb") as err:
            cmd = [str(exe), "edge", "run", "--config", str(_node_yaml(work, port, drop))]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
            try:
                up = wait_for(
                    lambda: proc.poll() is None and NODE_READY in log.read_text(errors="replace"),
                    timeout_s=120,
                    interval_s=0.2,
                )
                if not up:
                    raise RuntimeError(f"node did not start:\n{_tail(log)}")
                start = time.perf_counter()
                for p in files:
                    os.replace(staging / p.name, drop / p.name)
                data = work / "data"
                done = wait_for(
                    lambda: _handled(data) >= n or proc.poll() is not None,
                    timeout_s=120 + 10 * n,
                    interval_s=0.25,
                )
                wall = time.perf_counter() - start
                if not done or proc.poll() is not None:
                    raise RuntimeError(f"node handled {_handled(data)}/{n} files:\n{_tail(log)}")
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    code, peak = _wait_child(proc, timeout_s=60)
        if code != 0:
            raise RuntimeError(f"node exited {code}:\n{_tail(log)}")
        return peak, wall
    finally:
        broker.terminate()
        broker.wait(10)


def main() -> None:
    """Build the folders, run each mode in a child process, print one table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--only", choices=("scan", "run"), help="only the scans or only the node")
    parser.add_argument(
        "--no-exif", type=int, default=5, help="files without EXIF (file time only) per folder"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="built image folders")
    parser.add_argument(
        "--wildwatch",
        type=Path,
        default=Path(sys.executable).with_name("wildwatch"),
        help="the wildwatch command to measure",
    )
    args = parser.parse_args()
    modes = [m for m in MODES if args.only is None or m.startswith(args.only)]
    folders = {n: build_images(args.shared, n, args.no_exif, args.cache) for n in args.sizes}
    print(f"{args.wildwatch}; default node settings; {args.no_exif} files per folder without EXIF")
    print(f"{'N':>6} {'mode':<9} {'peak RSS MB':>12} {'seconds':>8} {'img/s':>6}", flush=True)
    for n in args.sizes:
        for mode in modes:
            with tempfile.TemporaryDirectory(prefix="ww-mem-") as tmp:
                work = Path(tmp)
                if mode == "run":
                    peak, wall = measure_run(args.wildwatch, folders[n], n, work)
                else:
                    peak, wall = measure_scan(
                        args.wildwatch, folders[n], n, mode == "scan+out", work
                    )
            print(f"{n:>6} {mode:<9} {peak:>12.0f} {wall:>8.1f} {n / wall:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
