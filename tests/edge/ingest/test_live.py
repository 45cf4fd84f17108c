"""Live feeds (real clip played as a stream, unreachable source) and the camera health monitor."""

from __future__ import annotations

import random
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from broker.payloads import CameraState
from edge.ingest import live
from edge.ingest.live import (
    CameraHealthMonitor,
    HealthSettings,
    LiveFeed,
    LiveSettings,
    LiveSourceError,
    SourceSpec,
    backoff_delay,
    parse_source,
    view_shift,
)
from tests.helpers import wait_for

Frame = npt.NDArray[np.uint8]
FAST = LiveSettings(playback_speed=200.0, backoff_initial_s=0.01, backoff_max_s=0.04)


def test_parse_source() -> None:
    assert parse_source("rtsp://user:pw@10.0.0.5:554/stream1") == SourceSpec(
        "url", "rtsp://user:pw@10.0.0.5:554/stream1"
    )
    assert parse_source("HTTP://cam/mjpeg").kind == "url"
    assert parse_source("0") == SourceSpec("usb", 0)
    assert parse_source(2) == SourceSpec("usb", 2)
    assert parse_source("picamera:1") == SourceSpec("picamera", 1)
    assert parse_source("/data/clip.avi") == SourceSpec("file", "/data/clip.avi")
    with pytest.raises(LiveSourceError):
        parse_source("picamera:front")


def test_backoff_doubles_to_cap_with_jitter() -> None:
    delays = [backoff_delay(a, 1.0, 60.0, 0.0, 0.5) for a in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff_delay(3, 1.0, 60.0, 0.25, 1.0) == 6.0
    assert backoff_delay(10_000, 1.0, 60.0, 0.25, 0.0) == 60.0


def test_picamera_without_picamera2_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "Picamera2", None)
    with pytest.raises(LiveSourceError, match="picamera2 is not installed"):
        LiveFeed("picamera:0")
    LiveFeed("rtsp://10.0.0.5/stream")  # other sources do not need it


def test_feed_plays_real_clip_and_loops(shared_dir: Path) -> None:
    clip = shared_dir / "data" / "videos" / "zamba_ct_grumeti_eland_106x60.mp4"  # 31 frames, 1 fps
    with LiveFeed(str(clip), FAST) as feed:
        first = feed.wait_frame(0, timeout_s=5.0)
        assert first is not None and first.image.shape == (60, 106, 3)
        assert wait_for(lambda: feed.reconnects >= 2, 10)
        newest = feed.latest()
        assert newest is not None and newest.seq >= first.seq
    assert not feed.running
    assert feed.opens >= 3 and feed.failures == 0
    assert feed.frames_read >= 31 * 2
    assert list(feed.delays) == []  # the end of a looping file is not a failure


def test_feed_paces_file_at_its_frame_rate(shared_dir: Path) -> None:
    clip = shared_dir / "data" / "videos" / "zamba_ct_grumeti_eland_106x60.mp4"
    with LiveFeed(str(clip), LiveSettings(playback_speed=20.0)) as feed:  # 20 fps
        first = feed.wait_frame(0, timeout_s=5.0)
        assert first is not None
        assert wait_for(lambda: feed.frames_read >= 6, 10, interval_s=0.01)
        read = feed.frames_read
        elapsed = time.monotonic() - first.t
    # Paced: the first frame, then at most one per 1/20 s since it (+1 for rounding). An unpaced
    # reader takes the whole clip (31 frames) at once, far above this bound.
    assert 6 <= read <= 20 * elapsed + 2


def test_file_without_loop_ends(shared_dir: Path) -> None:
    clip = shared_dir / "data" / "videos" / "zamba_ct_chimpandsee_90x60.asf"
    with LiveFeed(str(clip), FAST.model_copy(update={"loop_file": False})) as feed:
        assert wait_for(lambda: feed.ended, 10)
    assert feed.frames_read == 61 and feed.reconnects == 0


def test_unopenable_source_backs_off_and_monitor_reports_no_frames(tmp_path: Path) -> None:
    settings = LiveSettings(backoff_initial_s=0.01, backoff_max_s=0.08, backoff_jitter=0.5)
    monitor = CameraHealthMonitor(HealthSettings(no_frame_s=0.2))
    feed = LiveFeed(str(tmp_path / "missing.mp4"), settings, rng=random.Random(1))
    with feed:
        t0 = time.monotonic()
        assert monitor.check(t0) is None
        assert wait_for(lambda: feed.reconnects >= 6, 10)
        assert feed.latest() is None and feed.wait_frame(0, timeout_s=0.05) is None
        assert monitor.check(t0 + 0.1) is None  # silent for less than no_frame_s (0.2)
        # just past no_frame_s (t0 + 0.2 - t0 can round to 0.1999...)
        assert monitor.check(t0 + 0.25) is CameraState.NO_FRAMES
        assert monitor.check(t0 + 0.5) is None  # reported once
    assert feed.opens == 0 and feed.failures >= 6
    delays = list(feed.delays)
    assert delays[0] <= 0.01 and max(delays) <= 0.08
    assert delays[4] > delays[0]  # growing up to the cap


def test_stream_that_breaks_reconnects_with_backoff() -> None:
    class Flaky:
        fps: float | None = None

        def __init__(self) -> None:
            self.left = 3

        def read(self) -> Frame | None:
            self.left -= 1
            return np.zeros((4, 4, 3), np.uint8) if self.left >= 0 else None

        def release(self) -> None:
            pass

    feed = LiveFeed("rtsp://cam/1", FAST, opener=lambda spec, settings: Flaky())
    with feed:
        assert wait_for(lambda: feed.reconnects >= 3, 10)
    assert feed.frames_read >= 9 and feed.failures >= 3
    assert all(d <= 0.01 for d in feed.delays)  # frames came, so the backoff restarts


# Camera health on synthetic sequences -------------------------------------------------------

HEALTH = HealthSettings(frozen_s=2.0, black_s=2.0, moved_s=2.0, no_frame_s=5.0)


@pytest.fixture(scope="module")
def scene(shared_dir: Path) -> Frame:
    image = cv2.imread(str(shared_dir / "data" / "images" / "ct_ena24_2480.jpg"))
    assert image is not None
    return np.asarray(cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA), np.uint8)


def noisy(base: Frame, rng: np.random.Generator, sigma: float = 2.0) -> Frame:
    return np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)


def shifted(base: Frame, dx: int, dy: int) -> Frame:
    m = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return np.asarray(
        cv2.warpAffine(base, m, (base.shape[1], base.shape[0]), borderMode=cv2.BORDER_REFLECT),
        np.uint8,
    )


def feed_monitor(
    monitor: CameraHealthMonitor, frames: list[Frame], t0: float = 0.0, step: float = 0.5
) -> list[tuple[float, CameraState]]:
    changes = []
    for i, frame in enumerate(frames):
        t = t0 + i * step
        state = monitor.observe(frame, t)
        if state is not None:
            changes.append((t, state))
    return changes


def test_normal_noise_stays_ok(scene: Frame) -> None:
    rng = np.random.default_rng(0)
    monitor = CameraHealthMonitor(HEALTH)
    assert feed_monitor(monitor, [noisy(scene, rng) for _ in range(20)]) == [(0.0, CameraState.OK)]


def test_frozen_then_recovers(scene: Frame) -> None:
    rng = np.random.default_rng(1)
    monitor = CameraHealthMonitor(HEALTH)
    stuck = noisy(scene, rng)
    frames = [noisy(scene, rng) for _ in range(4)] + [stuck.copy() for _ in range(8)]
    frames += [noisy(scene, rng) for _ in range(2)]
    changes = feed_monitor(monitor, frames)
    # identical from the frame at 2.0 s; frozen once that lasted 2 s (at 4.0 s)
    assert changes == [(0.0, CameraState.OK), (4.0, CameraState.FROZEN), (6.0, CameraState.OK)]


def test_black_wins_over_frozen(scene: Frame) -> None:
    monitor = CameraHealthMonitor(HEALTH)
    black = np.full_like(scene, 3)
    changes = feed_monitor(monitor, [scene] + [black] * 8)
    assert changes == [(0.0, CameraState.OK), (2.5, CameraState.BLACK)]


def test_shifted_view_is_moved(scene: Frame) -> None:
    rng = np.random.default_rng(2)
    monitor = CameraHealthMonitor(HEALTH)
    frames = [noisy(scene, rng) for _ in range(4)]
    frames += [noisy(shifted(scene, 64, 20), rng) for _ in range(8)]  # 10% of the width
    changes = feed_monitor(monitor, frames)
    assert changes == [(0.0, CameraState.OK), (4.0, CameraState.MOVED)]
    dx, dy, _response = monitor.last_shift
    assert dx == pytest.approx(0.1, abs=0.02) and dy == pytest.approx(20 / 360, abs=0.02)
    monitor.rebase()
    assert monitor.observe(noisy(shifted(scene, 64, 20), rng), 10.0) is CameraState.OK


def test_small_wobble_and_brief_shift_are_not_moved(scene: Frame) -> None:
    rng = np.random.default_rng(3)
    monitor = CameraHealthMonitor(HEALTH)
    frames = [noisy(shifted(scene, (i % 3) - 1, 0), rng) for i in range(6)]  # wind: 1 px
    frames += [noisy(shifted(scene, 64, 0), rng) for _ in range(3)]  # 1.5 s < moved_s
    frames += [noisy(scene, rng) for _ in range(4)]
    assert feed_monitor(monitor, frames) == [(0.0, CameraState.OK)]


def test_view_shift_is_pure(scene: Frame) -> None:
    grey = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY).astype(np.float32)
    moved = cv2.cvtColor(shifted(scene, -32, 0), cv2.COLOR_BGR2GRAY).astype(np.float32)
    dx, dy, response = view_shift(grey, moved)
    assert dx == pytest.approx(-0.05, abs=0.01) and abs(dy) < 0.01 and response > 0.1
