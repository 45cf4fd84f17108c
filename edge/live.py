"""A live camera: frames from its feed, its health watched, each frame handed to the pipeline's
live stream (edge/pipeline.py: motion gate -> detector -> tracker -> rules); events go to a sink.
Camera-trap stills take the other stream of the same pipeline (drop folder -> pipeline.stills)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy.typing as npt

from broker.payloads import CameraState, EventPayload
from edge.config import CameraSettings
from edge.ingest.live import CameraHealthMonitor, LiveFeed
from edge.pipeline import Pipeline
from edge.watchdog import Stage

log = logging.getLogger(__name__)

FRAME_WAIT_S = 1.0  # how long to wait for a frame before checking the feed's health


class LiveCamera:
    """One live camera processed on its own thread; events go to `sink` (the outbox)."""

    def __init__(
        self,
        camera: CameraSettings,
        feed: LiveFeed | None,
        pipeline: Pipeline,
        sink: Callable[[list[EventPayload]], None],
    ) -> None:
        self.camera = camera.id
        self.feed = feed
        self.pipeline = pipeline
        self.sink = sink
        self.stream = pipeline.live(camera)
        self.health = CameraHealthMonitor(camera.health)
        self.frames = 0
        self.stage = Stage(f"camera {camera.id}")  # one frame at a time (the watchdog reads it)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"live-{camera.id}", daemon=True)

    @classmethod
    def open(
        cls, camera: CameraSettings, pipeline: Pipeline, sink: Callable[[list[EventPayload]], None]
    ) -> LiveCamera:
        """A camera reading its configured `source` (RTSP/HTTP URL, USB index, file, picamera:)."""
        if camera.source is None:
            raise ValueError(f"camera {camera.id} has no live source")
        return cls(camera, LiveFeed(camera.source, camera.live), pipeline, sink)

    def start(self) -> None:
        """Start reading and processing."""
        if self.feed is None:
            raise RuntimeError(f"camera {self.camera}: no feed to start (frames handed in)")
        self.feed.start()
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the camera's thread runs."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop processing and close the feed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self.feed is not None:
            self.feed.stop()

    def _run(self) -> None:
        assert self.feed is not None  # start() checked
        last = 0
        while not self._stop.is_set():
            frame = self.feed.wait_frame(last, FRAME_WAIT_S)
            if frame is None:
                state = self.health.check(time.monotonic())
                if state is not None:
                    problem = self.feed.problem if state is CameraState.NO_FRAMES else None
                    why = (problem.zh, problem.en) if problem is not None else None
                    now = datetime.now(self.pipeline.config.tz)
                    self._sink(self.pipeline.camera_health(self.camera, state, now, why))
                continue
            last = frame.seq
            try:
                with self.stage.working():
                    self.process(frame.image, frame.t)
            except Exception:  # one bad frame must not stop the camera
                log.exception("camera %s: frame %d failed", self.camera, frame.seq)

    def process(
        self, image: npt.NDArray[Any], t: float, now: datetime | None = None
    ) -> list[EventPayload]:
        """Handle one frame at monotonic time `t`; returns (and sinks) the events it raised."""
        self.frames += 1
        state = self.health.observe(image, t)
        captured = now or datetime.now(self.pipeline.config.tz)
        analysis = self.stream.push(image, t, captured, state)
        return self._sink(analysis.events if analysis is not None else [])

    def _sink(self, events: list[EventPayload]) -> list[EventPayload]:
        if events:
            self.sink(events)
        return events
