"""Whole-process cost of `edge scan` per detector configuration, side by side in one run.

Usage: python -m benchmarks.scan_cost [--shared ../shared] [--copies 3] [--rounds 2]
       [--config NAME ...]

The shared images are copied `--copies` times into one folder (38 x 3 = 114 images), and each
configuration runs `wildwatch edge scan` on it as a separate process, `--rounds` times in
alternation (the best wall time of each is kept, so a busy moment of the machine does not
count against one configuration). Printed per configuration: wall seconds, ms per image, the
ratio against the plain single YOLOX-Nano pass (`plain`), CPU seconds, peak RSS, and which
models ran how often. The target for the default configuration is at most 2x the plain pass.
Not a test: figures vary by machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from models.registry import STORE_ENV, import_dir

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"

# detector: sections compared; `default` is the node's default configuration.
CONFIGS: dict[str, dict[str, object]] = {
    "plain": {"backend": "yolox", "model": "yolox_nano_416_coco", "ir_enhance": "off"},
    "default": {},
    "ensemble-all": {"backend": "ensemble", "second_look_below": None},
    "cascade-mdlite416": {
        "backend": "ensemble",
        "members": ["yolox_nano_416_coco", "mdlite_yolox_tiny_416"],
    },
    "mdlite416": {"backend": "mdlite", "model": "mdlite_yolox_tiny_416", "ir_enhance": "off"},
}


@dataclass
class Run:
    """One `edge scan` process."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    models: Counter[str]


def folder(shared: Path, dest: Path, copies: int) -> int:
    """Copy the shared images `copies` times into `dest`; the number of images."""
    dest.mkdir(parents=True)
    n = 0
    for k in range(copies):
        for path in sorted((shared / "data" / "images").glob("*.jpg")):
            shutil.copy2(path, dest / f"c{k}_{path.name}")
            n += 1
    return n


def scan_once(images: Path, config: Path, results: Path, env: dict[str, str]) -> Run:
    """Run one `edge scan` process and measure it with wait4 (its own CPU time and RSS)."""
    cmd = [sys.executable, "-m", "wildwatch", "edge", "scan", str(images)]
    cmd += ["--config", str(config), "--results-out", str(results)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"edge scan failed ({proc.returncode}):\n{err[-2000:]}")
    models: Counter[str] = Counter()
    for line in results.read_text(encoding="utf-8").splitlines():
        models[json.loads(line).get("model", "")] += 1
    rss_mb = usage.ru_maxrss / 1024  # KB on Linux
    return Run(wall, usage.ru_utime + usage.ru_stime, rss_mb, models)


def main() -> None:
    """Prepare the folder, the store and the configurations; run and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--config", action="append", choices=sorted(CONFIGS), help="only these (repeatable)"
    )
    args = parser.parse_args()
    names = args.config or list(CONFIGS)
    if "plain" not in names:
        names.insert(0, "plain")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = folder(args.shared, root / "images", args.copies)
        store = root / "store"
        import_dir(args.shared / "models", store)
        env = dict(os.environ, **{STORE_ENV: str(store)})
        configs: dict[str, Path] = {}
        for name in names:
            data: dict[str, object] = {
                "site": "bench",
                "node": "scan",
                "data_dir": str(root / f"data-{name}"),
                "cameras": [{"id": "images"}],
            }
            if CONFIGS[name]:
                data["detector"] = CONFIGS[name]
            configs[name] = root / f"{name}.yaml"
            configs[name].write_text(yaml.safe_dump(data), encoding="utf-8")
        best: dict[str, Run] = {}
        for _ in range(args.rounds):
            for name in names:
                run = scan_once(root / "images", configs[name], root / f"{name}.jsonl", env)
                if name not in best or run.wall_s < best[name].wall_s:
                    best[name] = run
        plain = best["plain"].wall_s
        print(f"edge scan over {n} images ({args.copies} x the shared set), best of {args.rounds}")
        print(
            f"{'config':20} {'wall s':>7} {'ms/img':>7} {'x plain':>8} {'cpu s':>7} "
            f"{'peak RSS MB':>12}  models run (images)"
        )
        for name in names:
            r = best[name]
            ran = ", ".join(f"{m} {c}" for m, c in r.models.most_common())
            print(
                f"{name:20} {r.wall_s:7.2f} {1000 * r.wall_s / n:7.1f} {r.wall_s / plain:7.2f}x "
                f"{r.cpu_s:7.2f} {r.peak_rss_mb:12.0f}  {ran}"
            )


if __name__ == "__main__":
    main()
