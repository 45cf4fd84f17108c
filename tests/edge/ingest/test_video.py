"""Video clips: sampling the real camera-trap clips, broken files, the best frame per category."""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from broker.payloads import Category
from edge.detect import Detection, DetectionResult
from edge.ingest import MediaError
from edge.ingest.video import VIDEO_SUFFIXES, best_frames, sample_video, usable_fps

# name: (frames decodable, fps, width, height)
CLIPS = {
    "zamba_chimp_320x180.mp4": (450, 30.0, 320, 180),
    "zamba_ct_chimpandsee_90x60.asf": (61, 1.0, 90, 60),
    "zamba_ct_gorongosa_106x60.avi": (60, 1.0, 106, 60),
    "zamba_ct_grumeti_eland_106x60.mp4": (31, 1.0, 106, 60),
}


@pytest.fixture(scope="module")
def videos_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "videos"


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_real_clips_sampled_every_second(videos_dir: Path, name: str) -> None:
    frames, fps, width, height = CLIPS[name]
    path = videos_dir / name
    assert path.suffix.lower() in VIDEO_SUFFIXES
    samples = list(sample_video(path, every_s=1.0))
    times = [t for t, _ in samples]
    assert times[0] == 0.0
    assert len(samples) == math.ceil(frames / fps)
    assert all(b - a == pytest.approx(1.0, abs=0.5 / fps) for a, b in itertools.pairwise(times))
    assert all(f.shape == (height, width, 3) and f.dtype == np.uint8 for _, f in samples)


def test_sampling_step_and_frame_timing(videos_dir: Path) -> None:
    samples = list(sample_video(videos_dir / "zamba_chimp_320x180.mp4", every_s=2.5))
    assert [round(t, 3) for t, _ in samples] == [0.0, 2.5, 5.0, 7.5, 10.0, 12.5]
    every_frame = list(sample_video(videos_dir / "zamba_ct_gorongosa_106x60.avi", every_s=0.1))
    assert len(every_frame) == 60  # asking for more than the frame rate gives every frame


def test_truncated_avi_yields_what_decodes(
    videos_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = (videos_dir / "zamba_ct_gorongosa_106x60.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.3)])
    with caplog.at_level(logging.WARNING, logger="edge.ingest.video"):
        samples = list(sample_video(cut))
    assert 1 <= len(samples) < 60
    assert "decoding stopped" in caplog.text


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_truncated_copies_never_crash(videos_dir: Path, tmp_path: Path, name: str) -> None:
    data = (videos_dir / name).read_bytes()
    cut = tmp_path / f"cut{Path(name).suffix}"
    cut.write_bytes(data[: int(len(data) * 0.3)])
    try:
        samples = list(sample_video(cut))
    except MediaError as exc:  # MP4 keeps its index at the end: nothing opens
        assert str(exc)
    else:
        assert 1 <= len(samples) < CLIPS[name][0]


def test_truncated_mp4_and_garbage_raise(videos_dir: Path, tmp_path: Path) -> None:
    data = (videos_dir / "zamba_chimp_320x180.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.3)])
    (tmp_path / "junk.avi").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "empty.asf").write_bytes(b"")
    for name, reason in [
        ("cut.mp4", "cannot be opened|no frame"),
        ("junk.avi", "cannot be opened|no frame"),
        ("empty.asf", "empty"),
        ("absent.mp4", "no such file"),
    ]:
        with pytest.raises(MediaError, match=reason):
            sample_video(tmp_path / name)  # raises at the call, before iterating


def test_usable_fps() -> None:
    assert usable_fps(25.0) == 25.0
    assert [usable_fps(v) for v in (0.0, -1.0, float("nan"), 90000.0)] == [None] * 4


def test_missing_fps_falls_back_to_frame_stepping(
    videos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cv2.VideoCapture

    class NoFps:
        def __init__(self, source: str) -> None:
            self._cap = real(source)

        def get(self, prop: int) -> float:
            return 0.0 if prop == cv2.CAP_PROP_FPS else float(self._cap.get(prop))

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cap, name)

    monkeypatch.setattr(cv2, "VideoCapture", NoFps)
    monkeypatch.setattr("edge.ingest.video.FALLBACK_FPS", 5.0)
    samples = list(sample_video(videos_dir / "zamba_ct_gorongosa_106x60.avi", every_s=1.0))
    assert len(samples) == 12  # 60 frames taken as 5 fps: one frame in five


def _result(*detections: Detection) -> DetectionResult:
    return DetectionResult(list(detections), 100, 60, "test", 1.0)


def _det(score: float, category: Category) -> Detection:
    return Detection(0, 0, 10, 10, score, 0, str(category), category)


def test_best_frames_keeps_highest_score_per_category() -> None:
    frames = [np.full((60, 100, 3), i, np.uint8) for i in range(4)]
    samples = [
        (0.0, frames[0], _result(_det(0.4, Category.ANIMAL))),
        (1.0, frames[1], _result(_det(0.9, Category.ANIMAL), _det(0.3, Category.PERSON))),
        (2.0, frames[2], _result()),
        (3.0, frames[3], _result(_det(0.9, Category.ANIMAL), _det(0.6, Category.PERSON))),
    ]
    best = best_frames(samples)
    assert set(best) == {Category.ANIMAL, Category.PERSON}
    assert best[Category.ANIMAL].t == 1.0 and best[Category.ANIMAL].frame is frames[1]
    assert best[Category.PERSON].t == 3.0 and best[Category.PERSON].detection.score == 0.6
    assert best_frames([]) == {}
