"""A live camera: frames -> health check -> motion gate -> detector on motion crops -> tracker
-> rules -> events. Camera-trap stills take the other road (drop folder -> pipeline.look)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from broker.payloads import CameraState, Category, EventPayload
from edge.classify import Classification, crop_box, smooth
from edge.detect import Detection, DetectionResult, Detector
from edge.detect.nms import nms
from edge.ingest.live import CameraHealthMonitor, HealthSettings, LiveFeed, LiveSettings
from edge.motion import MotionSettings, Region
from edge.motion.gate import DetectionGate, GateSettings
from edge.motion.improved import ImprovedMotionDetector
from edge.pipeline import Pipeline
from edge.rules import Sighting
from edge.track import Track, iou
from edge.track.iou_tracker import IouTracker, TrackerSettings

log = logging.getLogger(__name__)

FRAME_WAIT_S = 1.0  # how long to wait for a frame before checking the feed's health
MERGE_IOU = 0.5  # boxes of overlapping crops that are the same object
TRACK_CALLS = 10  # species calls averaged per track: enough to steady it, recent enough to change
TRACK_MATCH_IOU = 0.9  # a matched track carries this frame's box, so the overlap is near 1


def detect_regions(
    detector: Detector, frame: npt.NDArray[Any], crops: list[Region]
) -> DetectionResult:
    """Run the detector on each crop and map the boxes back into the full frame (merged by NMS)."""
    h, w = frame.shape[:2]
    found: list[Detection] = []
    infer_ms = 0.0
    model = ""
    for c in crops:
        r = detector.detect(np.ascontiguousarray(frame[c.y1 : c.y2, c.x1 : c.x2]))
        infer_ms += r.inference_ms
        model = r.model
        for d in r.detections:
            found.append(
                Detection(
                    d.x1 + c.x1,
                    d.y1 + c.y1,
                    d.x2 + c.x1,
                    d.y2 + c.y1,
                    d.score,
                    d.class_id,
                    d.label,
                    d.category,
                )
            )
    if len(found) > 1:
        boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in found], dtype=np.float32)
        scores = np.array([d.score for d in found], dtype=np.float32)
        classes = np.array([d.class_id for d in found], dtype=np.int64)
        found = [found[int(i)] for i in nms(boxes, scores, classes, MERGE_IOU)]
    return DetectionResult(found, w, h, model, infer_ms)


class LiveCamera:
    """One live camera processed on its own thread; events go to `sink` (the outbox)."""

    def __init__(
        self,
        camera: str,
        feed: LiveFeed,
        pipeline: Pipeline,
        sink: Callable[[list[EventPayload]], None],
        *,
        motion: MotionSettings | None = None,
        gate: GateSettings | None = None,
        tracker: TrackerSettings | None = None,
        health: HealthSettings | None = None,
    ) -> None:
        self.camera = camera
        self.feed = feed
        self.pipeline = pipeline
        self.sink = sink
        self.motion = ImprovedMotionDetector(motion)
        self.gate = DetectionGate(gate or GateSettings())
        self.tracker = IouTracker(tracker)
        self.health = CameraHealthMonitor(health)
        self.frames = 0
        self._calls: dict[int, deque[Classification]] = {}  # per track: its recent species calls
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"live-{camera}", daemon=True)

    @classmethod
    def open(
        cls,
        camera: str,
        source: str,
        pipeline: Pipeline,
        sink: Callable[[list[EventPayload]], None],
        live: LiveSettings | None = None,
        **kwargs: Any,
    ) -> LiveCamera:
        """A camera reading `source` (RTSP/HTTP URL, USB index, file, picamera:)."""
        return cls(camera, LiveFeed(source, live), pipeline, sink, **kwargs)

    def start(self) -> None:
        """Start reading and processing."""
        self.feed.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop processing and close the feed."""
        self._stop.set()
        self._thread.join(10)
        self.feed.stop()

    def _run(self) -> None:
        last = 0
        while not self._stop.is_set():
            frame = self.feed.wait_frame(last, FRAME_WAIT_S)
            if frame is None:
                state = self.health.check(time.monotonic())
                if state is not None:
                    self._emit(self._empty_sighting(state))
                continue
            last = frame.seq
            try:
                self.process(frame.image, frame.t)
            except Exception:  # one bad frame must not stop the camera
                log.exception("camera %s: frame %d failed", self.camera, frame.seq)

    def process(
        self, image: npt.NDArray[Any], t: float, now: datetime | None = None
    ) -> list[EventPayload]:
        """Handle one frame at monotonic time `t`; returns (and sinks) the events it raised."""
        self.frames += 1
        captured = now or datetime.now(self.pipeline.config.tz)
        state = self.health.observe(image, t)
        decision = self.gate.decide(self.motion.detect(image), image.shape, t)
        if decision.mode == "skip" and state is None:
            return []
        h, w = image.shape[:2]
        if decision.mode == "full":
            result = self.pipeline.detector.detect(image)
        elif decision.mode == "crops":
            result = detect_regions(self.pipeline.detector, image, decision.crops)
        else:
            result = DetectionResult([], w, h, "", 0.0)
        tracks = self.tracker.update(result.detections, t) if decision.mode != "skip" else []
        sighting = Sighting(
            camera=self.camera,
            captured_at=captured,
            detections=result.detections,
            width=w,
            height=h,
            source=f"live:{self.camera}",
            model=result.model,
            tracks=tuple(tracks),
            track_t=t,
            camera_state=state,
            species=self._species(image, result, tracks),
        )
        return self._emit(sighting)

    def _species(
        self, image: npt.NDArray[Any], result: DetectionResult, tracks: list[Track]
    ) -> dict[int, Classification]:
        """Classify each bird and smooth its species over its track (the same bird, frame
        after frame, should get one steady name)."""
        classifier = self.pipeline.classifier
        if classifier is None:
            return {}
        live = {t.id for t in tracks}
        for gone in set(self._calls) - live:
            del self._calls[gone]
        species: dict[int, Classification] = {}
        for i, d in enumerate(result.detections):
            if d.category is not Category.BIRD:
                continue
            crop = crop_box(image, (d.x1, d.y1, d.x2, d.y2), self.pipeline.crop_margin)
            call = classifier.classify(crop)
            track = _track_of(d, tracks)
            if track is None:
                species[i] = call
                continue
            history = self._calls.setdefault(track.id, deque(maxlen=TRACK_CALLS))
            history.append(call)
            species[i] = smooth(list(history))
        return species

    def _empty_sighting(self, state: CameraState) -> Sighting:
        problem = self.feed.problem if state is CameraState.NO_FRAMES else None
        return Sighting(
            camera=self.camera,
            captured_at=datetime.now(self.pipeline.config.tz),
            detections=[],
            width=0,
            height=0,
            source=f"live:{self.camera}",
            model="",
            camera_state=state,
            camera_problem=(problem.zh, problem.en) if problem is not None else None,
        )

    def _emit(self, sighting: Sighting) -> list[EventPayload]:
        events = self.pipeline.events_for(sighting)
        if events:
            self.sink(events)
        return events


def _track_of(d: Detection, tracks: list[Track]) -> Track | None:
    """The track this frame's detection was matched to (its box is the detection's box)."""
    best, best_iou = None, TRACK_MATCH_IOU
    for t in tracks:
        if t.category is not d.category or t.missed:
            continue
        overlap = iou(t.box, (d.x1, d.y1, d.x2, d.y2))
        if overlap >= best_iou:
            best, best_iou = t, overlap
    return best
