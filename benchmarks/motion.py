"""Motion benchmark: how often the detection gate skips the detector on a static 1080p scene, and
what motion detection costs per 1080p frame with each downscaling interpolation.

Usage: python -m benchmarks.motion [--shared ../shared] [--static 300] [--moving 60]
A real camera-trap frame is resized to 1920x1080; every frame gets fresh-looking Gaussian noise
(sigma 2, cycled from a few precomputed fields so making frames is not timed), then a dark
synthetic animal walks across for a short segment. Not a test: figures vary by machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge.motion import MotionSettings
from edge.motion.gate import DetectionGate, GateSettings
from edge.motion.improved import ImprovedMotionDetector

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
IMAGE = "ct_ena24_2480.jpg"
SIZE = (1920, 1080)
NOISE_SIGMA = 2.0
NOISE_FIELDS = 8
FPS = 5.0  # a typical edge-node analysis rate

Frame = npt.NDArray[np.uint8]
Interpolation = Literal["nearest", "area"]


def base_frame(shared: Path) -> Frame:
    image = cv2.imread(str(shared / "data" / "images" / IMAGE))
    if image is None:
        raise SystemExit(f"cannot read {IMAGE} under {shared}")
    return np.asarray(cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA), np.uint8)


def noise_fields(rng: np.random.Generator) -> list[npt.NDArray[np.int16]]:
    shape = (SIZE[1], SIZE[0], 3)
    return [
        np.round(rng.normal(0, NOISE_SIGMA, shape)).astype(np.int16) for _ in range(NOISE_FIELDS)
    ]


def make_frame(base: Frame, noise: npt.NDArray[np.int16], animal_x: int | None) -> Frame:
    frame: Frame = np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    if animal_x is not None:
        cv2.ellipse(frame, (animal_x, 700), (120, 70), 0, 0, 360, (35, 40, 45), -1)
    return frame


def run(
    base: Frame, fields: list[Any], static: int, moving: int, interpolation: Interpolation
) -> dict[str, float]:
    detector = ImprovedMotionDetector(MotionSettings(interpolation=interpolation))
    gate = DetectionGate(GateSettings(full_frame_every_frames=25, full_frame_every_s=10.0))
    costs: list[float] = []
    static_skipped = moving_crops = moving_frames_with_motion = 0
    for i in range(static + moving):
        k = i - static
        x = 200 + k * (1500 // max(moving, 1)) if k >= 0 else None
        frame = make_frame(base, fields[i % len(fields)], x)
        start = time.perf_counter()
        regions = detector.detect(frame)
        costs.append((time.perf_counter() - start) * 1000)
        decision = gate.decide(regions, frame.shape, i / FPS)
        if k < 0:
            static_skipped += decision.mode == "skip"
        else:
            moving_frames_with_motion += bool(regions)
            moving_crops += decision.mode == "crops"
    costs.sort()
    return {
        "static_skip": static_skipped / static,
        "moving_motion": moving_frames_with_motion / max(moving, 1),
        "moving_crops": moving_crops / max(moving, 1),
        "median_ms": statistics.median(costs),
        "p95_ms": costs[int(0.95 * (len(costs) - 1))],
        "overall_skip": gate.stats.skipped_fraction,
    }


def resize_only(base: Frame, interpolation: int, repeats: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        cv2.resize(base, (320, 180), interpolation=interpolation)
    return (time.perf_counter() - start) * 1000 / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--static", type=int, default=300)
    parser.add_argument("--moving", type=int, default=60)
    args = parser.parse_args()
    cv2.setNumThreads(2)
    base = base_frame(args.shared)
    fields = noise_fields(np.random.default_rng(0))
    print(
        f"scene {IMAGE} at {SIZE[0]}x{SIZE[1]}, noise sigma {NOISE_SIGMA}, "
        f"{args.static} static + {args.moving} moving frames, gate at {FPS:g} fps, "
        f"full frame every 25 frames / 10 s, cv2 threads {cv2.getNumThreads()}"
    )
    header = (
        f"{'interpolation':<14}{'resize ms':>10}{'median ms':>11}{'p95 ms':>9}"
        f"{'static skip':>13}{'moving: motion':>16}{'crops':>8}{'all skip':>10}"
    )
    print(header)
    print("-" * len(header))
    choices: list[tuple[Interpolation, int]] = [
        ("nearest", cv2.INTER_NEAREST),
        ("area", cv2.INTER_AREA),
    ]
    for name, flag in choices:
        r = run(base, fields, args.static, args.moving, name)
        print(
            f"{name:<14}{resize_only(base, flag):>10.2f}{r['median_ms']:>11.2f}{r['p95_ms']:>9.2f}"
            f"{r['static_skip']:>13.1%}{r['moving_motion']:>16.1%}{r['moving_crops']:>8.1%}"
            f"{r['overall_skip']:>10.1%}"
        )
    print("targets: static skip >= 90%, motion cost <= 2 ms per 1080p frame")


if __name__ == "__main__":
    main()
