"""Live cameras: the newest frame of a stream read in the background, and the camera's health."""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from broker.payloads import CameraState
from edge.ingest.netcam import FeedProblem, diagnose_url, redact_url

try:  # only on a Raspberry Pi with the camera stack installed
    from picamera2 import Picamera2  # type: ignore[import-not-found, unused-ignore]
except ImportError:
    Picamera2 = None

log = logging.getLogger(__name__)

# Reconnect delays double from the first to the cap: a camera rebooting is back in seconds,
# one that is gone for the night is not polled more than once a minute. Jitter keeps nodes
# that lost the same network from reconnecting in lockstep.
DEFAULT_BACKOFF_INITIAL_S = 1.0
DEFAULT_BACKOFF_MAX_S = 60.0
DEFAULT_BACKOFF_JITTER = 0.25
# OpenCV/FFmpeg waits this long to open or read a network stream before giving up; shorter
# notices a dead camera sooner but drops slow links (4G) that would have answered.
DEFAULT_NETWORK_TIMEOUT_S = 10.0
# Files without a usable frame rate are played at this rate.
FALLBACK_FPS = 10.0
DEFAULT_PICAMERA_SIZE = (1280, 720)

Frame = npt.NDArray[np.uint8]


class LiveSourceError(Exception):
    """A live source that is misconfigured or cannot be used on this node."""


class FeedUnavailable(OSError):
    """A network camera that cannot be opened now, with the reason the camera gave."""

    def __init__(self, message: str, problem: FeedProblem) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """Where frames come from: a network URL, a USB camera index, a video file or a Pi camera."""

    kind: Literal["url", "usb", "file", "picamera"]
    target: str | int

    @property
    def display(self) -> str:
        """The source as logs and messages show it: a URL's password replaced by ***."""
        return redact_url(self.target) if self.kind == "url" else str(self.target)


def parse_source(source: str | int) -> SourceSpec:
    """Classify a configured source: 'rtsp://…', 'http://…', '0' (USB), 'picamera:0', a path."""
    if isinstance(source, int):
        return SourceSpec("usb", source)
    text = source.strip()
    if text.startswith("picamera:"):
        index = text.removeprefix("picamera:") or "0"
        if not index.isdigit():
            raise LiveSourceError(f"picamera source needs a camera number, got {source!r}")
        return SourceSpec("picamera", int(index))
    if text.isdigit():
        return SourceSpec("usb", int(text))
    if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        return SourceSpec("url", text)
    return SourceSpec("file", text)


def backoff_delay(
    attempt: int, initial: float, maximum: float, jitter: float, rand: float
) -> float:
    """Delay before reconnect `attempt` (0-based): doubling, capped, reduced by up to `jitter`."""
    base = min(maximum, initial * 2.0 ** min(attempt, 62))
    return base * (1.0 - jitter * rand)


class LiveSettings(BaseModel):
    """How one live camera is read (part of the camera's configuration)."""

    model_config = ConfigDict(extra="forbid")

    loop_file: bool = Field(
        default=True, description="start a video file source again when it ends (demos, tests)"
    )
    playback_speed: float = Field(
        default=1.0, gt=0.0, le=10_000.0, description="file sources: multiple of their frame rate"
    )
    backoff_initial_s: float = Field(
        default=DEFAULT_BACKOFF_INITIAL_S, gt=0.0, le=600.0, description="first reconnect delay"
    )
    backoff_max_s: float = Field(
        default=DEFAULT_BACKOFF_MAX_S, gt=0.0, le=3600.0, description="longest reconnect delay"
    )
    backoff_jitter: float = Field(
        default=DEFAULT_BACKOFF_JITTER,
        ge=0.0,
        le=1.0,
        description="fraction by which each delay is randomly shortened",
    )
    network_timeout_s: float = Field(
        default=DEFAULT_NETWORK_TIMEOUT_S,
        gt=0.0,
        le=300.0,
        description="open/read timeout of network streams",
    )
    picamera_size: tuple[int, int] = Field(
        default=DEFAULT_PICAMERA_SIZE, description="Pi camera frame size (width, height)"
    )


@dataclass(frozen=True, slots=True)
class LiveFrame:
    """One frame with the monotonic time it was read and its running number."""

    image: Frame
    t: float
    seq: int


class Capture(Protocol):
    """An open frame source."""

    fps: float | None  # frames per second for pacing a file, None for live sources

    def read(self) -> Frame | None:
        """The next frame, or None when the source failed or ended."""
        ...

    def release(self) -> None:
        """Close the source."""
        ...


class OpenCvCapture:
    """A cv2.VideoCapture source (URL, USB index or file)."""

    def __init__(self, spec: SourceSpec, settings: LiveSettings) -> None:
        # RTSP: OpenCV's FFmpeg default (rtsp_flags=prefer_tcp) tries TCP, then UDP, so both
        # kinds of camera work without a setting (tested against TCP-only and UDP-only servers).
        timeout_ms = int(settings.network_timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC]
        params.append(timeout_ms)
        if spec.kind == "file" and not Path(str(spec.target)).is_file():
            raise OSError(f"no such file: {spec.target}")
        if spec.kind == "url":
            self._cap = cv2.VideoCapture(str(spec.target), cv2.CAP_ANY, params)
        else:
            self._cap = cv2.VideoCapture(spec.target)
        if not self._cap.isOpened():
            self._cap.release()
            if spec.kind == "url":
                problem = diagnose_url(str(spec.target), settings.network_timeout_s)
                raise FeedUnavailable(str(problem), problem)
            raise OSError(f"cannot open {spec.kind} source {spec.display!r}")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        plausible = 0.0 < fps <= 240.0
        self.fps = (fps if plausible else FALLBACK_FPS) if spec.kind == "file" else None

    def read(self) -> Frame | None:
        """The next decoded frame or None."""
        ok, frame = self._cap.read()
        return np.asarray(frame, np.uint8) if ok and frame is not None else None

    def release(self) -> None:
        """Close the capture."""
        self._cap.release()


class PiCameraCapture:
    """A Raspberry Pi camera through picamera2 (BGR frames)."""

    fps: float | None = None

    def __init__(self, spec: SourceSpec, settings: LiveSettings) -> None:
        if Picamera2 is None:
            raise LiveSourceError("picamera source configured but picamera2 is not installed")
        self._camera = Picamera2(int(spec.target))
        # "RGB888" is B, G, R in memory: the order OpenCV expects.
        config = self._camera.create_video_configuration(
            main={"format": "RGB888", "size": tuple(settings.picamera_size)}
        )
        self._camera.configure(config)
        self._camera.start()

    def read(self) -> Frame | None:
        """The next frame or None when the camera fails."""
        try:
            return np.asarray(self._camera.capture_array("main"), np.uint8)
        except RuntimeError as exc:
            log.warning("picamera read failed: %s", exc)
            return None

    def release(self) -> None:
        """Stop and close the camera."""
        self._camera.stop()
        self._camera.close()


Opener = Callable[[SourceSpec, LiveSettings], Capture]


def open_capture(spec: SourceSpec, settings: LiveSettings) -> Capture:
    """Open a source; OSError when it cannot be opened now (worth retrying)."""
    if spec.kind == "picamera":
        return PiCameraCapture(spec, settings)
    return OpenCvCapture(spec, settings)


class LiveFeed:
    """Reads a source in a background thread, keeping only the newest frame; reconnects."""

    def __init__(
        self,
        source: str | int,
        settings: LiveSettings | None = None,
        *,
        opener: Opener = open_capture,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = parse_source(source)
        if self.spec.kind == "picamera" and Picamera2 is None and opener is open_capture:
            raise LiveSourceError("picamera source configured but picamera2 is not installed")
        self.settings = settings or LiveSettings()
        self._opener = opener
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._new_frame = threading.Condition()
        self._latest: LiveFrame | None = None
        self._thread: threading.Thread | None = None
        self.frames_read = 0
        self.opens = 0  # successful opens
        self.reconnects = 0  # open attempts after the first
        self.failures = 0  # failed opens and streams that broke
        self.ended = False  # a file source finished and does not loop
        # Why the last open failed (network cameras), None once a stream opens again.
        self.problem: FeedProblem | None = None
        self.delays: deque[float] = deque(
            maxlen=32
        )  # recent reconnect delays, for health and tests

    def start(self) -> LiveFeed:
        """Start the reader thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"live-{self.spec.display}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the reader thread and wait for it (a blocked network read ends by its timeout)."""
        self._stop.set()
        with self._new_frame:
            self._new_frame.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("reader of %s did not stop within %.1f s", self.spec.display, timeout_s)

    def __enter__(self) -> LiveFeed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the reader thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def latest(self) -> LiveFrame | None:
        """The newest frame read so far (None before the first)."""
        with self._new_frame:
            return self._latest

    def wait_frame(self, after_seq: int = 0, timeout_s: float = 1.0) -> LiveFrame | None:
        """The newest frame numbered above `after_seq`, waiting up to `timeout_s` for one."""
        deadline = time.monotonic() + timeout_s
        with self._new_frame:
            while self._latest is None or self._latest.seq <= after_seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._new_frame.wait(remaining)
            return self._latest

    def _run(self) -> None:
        attempt = 0
        first = True
        while not self._stop.is_set():
            if not first:
                self.reconnects += 1
            first = False
            try:
                capture = self._opener(self.spec, self.settings)
            except (OSError, LiveSourceError) as exc:
                self.failures += 1
                self.problem = exc.problem if isinstance(exc, FeedUnavailable) else None
                attempt = self._back_off(attempt, f"cannot open: {exc}")
                continue
            self.opens += 1
            self.problem = None
            try:
                got_frames, ended = self._pump(capture)
            finally:
                capture.release()
            if got_frames:
                attempt = 0
            if self._stop.is_set():
                break
            if ended and self.spec.kind == "file":
                if not self.settings.loop_file:
                    log.info("file source %s ended", self.spec.display)
                    self.ended = True
                    break
                if got_frames:
                    continue  # loop at once: the end of a file is not a failure
            self.failures += 1
            attempt = self._back_off(attempt, "stream ended or broke")

    def _back_off(self, attempt: int, why: str) -> int:
        s = self.settings
        delay = backoff_delay(
            attempt, s.backoff_initial_s, s.backoff_max_s, s.backoff_jitter, self._rng.random()
        )
        self.delays.append(delay)
        log.warning(
            "%s source %s: %s; retrying in %.1f s", self.spec.kind, self.spec.display, why, delay
        )
        self._stop.wait(delay)
        return attempt + 1

    def _pump(self, capture: Capture) -> tuple[bool, bool]:
        """Read until stopped or the source ends: (any frame read, source ended)."""
        got = False
        interval = 1.0 / (capture.fps * self.settings.playback_speed) if capture.fps else 0.0
        due = time.monotonic()
        while not self._stop.is_set():
            image = capture.read()
            if image is None:
                return got, True
            got = True
            now = time.monotonic()
            with self._new_frame:
                self.frames_read += 1
                self._latest = LiveFrame(image, now, self.frames_read)
                self._new_frame.notify_all()
            if interval:
                # Pace a file at its frame rate; never try to catch up after a stall.
                due = max(due + interval, now)
                self._stop.wait(max(due - time.monotonic(), 0.0))
        return got, False


# Camera health -----------------------------------------------------------------------------

# Seconds without a frame before the camera is reported silent; shorter alarms on a network
# hiccup, longer hides a dead camera.
DEFAULT_NO_FRAME_S = 30.0
# Identical frames for this long mean the stream is frozen; keep it well above the encoder's
# keyframe interval (a static H.264 scene repeats P-frames exactly between keyframes).
DEFAULT_FROZEN_S = 60.0
# Mean absolute grey difference (on sampled pixels, so sensor noise survives) below which two
# frames are the same picture; real sensor noise gives about 1-3 grey levels.
DEFAULT_FROZEN_DIFF = 0.2
# Mean brightness below which the picture is black (lens covered, IR lamps dead at night).
DEFAULT_BLACK_LEVEL = 12.0
DEFAULT_BLACK_S = 60.0
# A view shifted by more than this fraction of the frame, consistently for moved_s, means the
# camera was knocked or turned; lower catches small knocks but also a swaying mount in wind.
DEFAULT_MOVED_FRACTION = 0.05
DEFAULT_MOVED_S = 10.0
# Phase-correlation peak above which the shifted image is still the same scene.
DEFAULT_MOVED_MIN_RESPONSE = 0.1
# The reference view follows slow changes (light, vegetation) this often while the view holds.
DEFAULT_REFERENCE_REFRESH_S = 600.0
DEFAULT_THUMB_WIDTH = 128


class HealthSettings(BaseModel):
    """Thresholds of the camera health monitor."""

    model_config = ConfigDict(extra="forbid")

    no_frame_s: float = Field(
        default=DEFAULT_NO_FRAME_S, gt=0.0, le=86_400.0, description="no frame for this long"
    )
    frozen_s: float = Field(
        default=DEFAULT_FROZEN_S, gt=0.0, le=86_400.0, description="identical frames for this long"
    )
    frozen_diff: float = Field(
        default=DEFAULT_FROZEN_DIFF, ge=0.0, le=50.0, description="grey-level change below = same"
    )
    black_level: float = Field(
        default=DEFAULT_BLACK_LEVEL, ge=0.0, le=255.0, description="mean brightness below = black"
    )
    black_s: float = Field(
        default=DEFAULT_BLACK_S, gt=0.0, le=86_400.0, description="black frames for this long"
    )
    moved_fraction: float = Field(
        default=DEFAULT_MOVED_FRACTION, gt=0.0, le=0.5, description="shift (fraction of frame)"
    )
    moved_s: float = Field(
        default=DEFAULT_MOVED_S, gt=0.0, le=86_400.0, description="shifted view for this long"
    )
    moved_min_response: float = Field(
        default=DEFAULT_MOVED_MIN_RESPONSE,
        ge=0.0,
        le=1.0,
        description="phase-correlation peak needed to call a shifted view the same scene",
    )
    reference_refresh_s: float = Field(
        default=DEFAULT_REFERENCE_REFRESH_S,
        gt=0.0,
        le=86_400.0,
        description="seconds between updates of the reference view while it holds",
    )
    thumb_width: int = Field(
        default=DEFAULT_THUMB_WIDTH, ge=16, le=640, description="width of the compared thumbnails"
    )


def thumbnails(
    frame: npt.NDArray[Any], width: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Grey (averaged, sampled) thumbnails: averaged for brightness and shift, sampled for noise."""
    h, w = frame.shape[:2]
    cols = min(width, w)
    size = (cols, max(1, round(h * cols / w)))
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    averaged = cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    sampled = cv2.resize(grey, size, interpolation=cv2.INTER_NEAREST).astype(np.float32)
    return averaged, sampled


def view_shift(
    reference: npt.NDArray[np.float32], current: npt.NDArray[np.float32]
) -> tuple[float, float, float]:
    """(dx, dy) of `current` against `reference` as fractions of the size, and the peak response."""
    window = cv2.createHanningWindow((reference.shape[1], reference.shape[0]), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(reference, current, window)
    return dx / reference.shape[1], dy / reference.shape[0], float(response)


class CameraHealthMonitor:
    """Camera state from the frames it is shown; returns a state only when it changes."""

    def __init__(self, settings: HealthSettings | None = None) -> None:
        self.settings = settings or HealthSettings()
        self.state = CameraState.UNKNOWN
        self._started: float | None = None
        self._last_frame_t: float | None = None
        self._previous: npt.NDArray[np.float32] | None = None
        self._reference: npt.NDArray[np.float32] | None = None
        self._reference_t = 0.0
        self._frozen_since: float | None = None
        self._black_since: float | None = None
        self._moved_since: float | None = None
        self.last_shift = (0.0, 0.0, 0.0)

    def rebase(self) -> None:
        """Accept the current view as the reference (after a ranger re-aimed the camera)."""
        self._reference = None
        self._moved_since = None

    def observe(self, frame: npt.NDArray[Any], t: float) -> CameraState | None:
        """Feed a new frame (each frame once) read at `t`; the new state if it changed."""
        s = self.settings
        if self._started is None:
            self._started = t
        averaged, sampled = thumbnails(frame, s.thumb_width)
        black = float(averaged.mean()) < s.black_level
        if not black:
            self._black_since = None
        elif self._black_since is None:
            self._black_since = t
        previous = self._previous
        same = (
            previous is not None
            and previous.shape == sampled.shape
            and float(cv2.absdiff(previous, sampled).mean()) <= s.frozen_diff
        )
        if not same:
            self._frozen_since = None
        elif self._frozen_since is None:
            self._frozen_since = self._last_frame_t
        self._previous = sampled
        self._last_frame_t = t
        if not black:
            self._check_view(averaged, t)
        return self._transition(self._evaluate(t))

    def check(self, t: float) -> CameraState | None:
        """Call periodically: NO_FRAMES once no frame came for `no_frame_s`; the new state."""
        if self._started is None:
            self._started = t
        last = self._last_frame_t if self._last_frame_t is not None else self._started
        if t - last >= self.settings.no_frame_s:
            return self._transition(CameraState.NO_FRAMES)
        return None

    def _check_view(self, thumb: npt.NDArray[np.float32], t: float) -> None:
        s = self.settings
        if self._reference is None or self._reference.shape != thumb.shape:
            self._reference, self._reference_t = thumb, t
            return
        dx, dy, response = view_shift(self._reference, thumb)
        self.last_shift = (dx, dy, response)
        shifted = max(abs(dx), abs(dy)) > s.moved_fraction and response >= s.moved_min_response
        if shifted:
            if self._moved_since is None:
                self._moved_since = t
        else:
            self._moved_since = None
            if t - self._reference_t >= s.reference_refresh_s:
                self._reference, self._reference_t = thumb, t

    def _evaluate(self, t: float) -> CameraState:
        s = self.settings
        if self._black_since is not None and t - self._black_since >= s.black_s:
            return CameraState.BLACK
        if self._frozen_since is not None and t - self._frozen_since >= s.frozen_s:
            return CameraState.FROZEN
        if self._moved_since is not None and t - self._moved_since >= s.moved_s:
            return CameraState.MOVED
        return CameraState.OK

    def _transition(self, state: CameraState) -> CameraState | None:
        if state == self.state:
            return None
        log.info("camera state %s -> %s", self.state, state)
        self.state = state
        return state
