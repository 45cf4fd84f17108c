"""Video clips from camera traps: frames sampled every few seconds, and the best frame kept."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from broker.payloads import Category
from edge.detect import Detection, DetectionResult
from edge.ingest import MediaError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".avi", ".asf", ".wmv", ".mp4", ".m4v", ".mov", ".mkv", ".3gp"})
# Containers that do not say their frame rate (some ASF from camera traps) are stepped as if
# they ran at this rate: most trap clips are 10-30 fps; assuming the low end samples more
# frames than asked rather than skipping seconds.
FALLBACK_FPS = 10.0
# Rates outside this range are container garbage, not a frame rate.
MAX_PLAUSIBLE_FPS = 240.0
# A clip that decodes fewer frames than its header promises by more than this is reported as
# cut short (a few frames of slack: headers often count one or two frames that never decode).
FRAME_COUNT_SLACK = 2

Frame = npt.NDArray[np.uint8]


def usable_fps(reported: float) -> float | None:
    """The container's frame rate, or None when it is missing or implausible."""
    if not math.isfinite(reported) or reported <= 0 or reported > MAX_PLAUSIBLE_FPS:
        return None
    return reported


def is_due(t: float, next_t: float, fps: float) -> bool:
    """Whether a frame at `t` is the sample for `next_t` (half a frame of rounding allowed)."""
    return t + 0.5 / fps >= next_t


def sample_video(path: Path, every_s: float = 1.0) -> Iterator[tuple[float, Frame]]:
    """(seconds from the clip start, BGR frame) about every `every_s` seconds, first frame at 0.

    Raises MediaError at once when the file cannot be opened or no frame decodes; a clip that
    stops decoding early yields what decoded and logs a warning.
    """
    if every_s <= 0:
        raise ValueError(f"every_s must be positive, got {every_s}")
    if not path.is_file():
        raise MediaError("no such file")
    if path.stat().st_size == 0:
        raise MediaError("empty file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise MediaError("not a readable video (the container cannot be opened)")
    ok, first = capture.read()
    if not ok or first is None or first.size == 0:
        capture.release()
        raise MediaError("no frame decodes (corrupt or truncated video)")
    fps = usable_fps(capture.get(cv2.CAP_PROP_FPS))
    if fps is None:
        log.warning("%s: no usable frame rate; stepping as if %g fps", path.name, FALLBACK_FPS)
    expected = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    first_bgr = np.asarray(first, np.uint8)
    return _samples(capture, path, first_bgr, fps or FALLBACK_FPS, every_s, expected)


def _samples(
    capture: cv2.VideoCapture,
    path: Path,
    first: Frame,
    fps: float,
    every_s: float,
    expected: float,
) -> Iterator[tuple[float, Frame]]:
    try:
        yield 0.0, first
        next_t = every_s
        index = 1
        while capture.grab():  # grab without converting frames that are not sampled
            t = index / fps
            index += 1
            if not is_due(t, next_t, fps):
                continue
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                break
            yield t, np.asarray(frame, np.uint8)
            while is_due(t, next_t, fps):
                next_t += every_s
        if math.isfinite(expected) and expected > 0 and index + FRAME_COUNT_SLACK < expected:
            log.warning(
                "%s: decoding stopped after %d of %d frames (truncated or corrupt); "
                "using the frames before",
                path.name,
                index,
                int(expected),
            )
    finally:
        capture.release()


@dataclass(frozen=True, slots=True)
class BestFrame:
    """The highest-scoring detection of one category in a clip, with its frame."""

    t: float
    frame: npt.NDArray[Any]
    detection: Detection


def best_frames(
    samples_with_results: Iterable[tuple[float, npt.NDArray[Any], DetectionResult]],
) -> dict[Category, BestFrame]:
    """Per detected category the frame with its highest-scoring detection (earliest on ties)."""
    best: dict[Category, BestFrame] = {}
    for t, frame, result in samples_with_results:
        for d in result.detections:
            kept = best.get(d.category)
            if kept is None or d.score > kept.detection.score:
                best[d.category] = BestFrame(t, frame, d)
    return best
