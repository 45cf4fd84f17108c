"""Where a frame becomes an event: the one road from pixels to events for every source.

    camera-trap still or clip (drop folder, `edge scan`)      live frame (RTSP, HTTP, USB)
        |                                                        | motion gate: skip, crops or full
        +------------------> look: detect, classify birds <------+ + tracker
                                   |
              smooth species over the burst          smooth species over the track
                                   |
                     decide: rules -> events (contract payloads)

`Pipeline` holds the models and the rules. A source feeds one stream per camera:
`Pipeline.stills()` for camera-trap media (frames of one burst are decided together, so a bird's
species is called once per burst) and `Pipeline.live()` for a live feed. The node's drop folders,
`edge scan` and the live cameras all go through these two streams and nothing else, so what
`edge scan` (and `wildwatch eval`) measures is what a node in the field decides.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from broker.payloads import Box, CameraState, Category, EventPayload, utc_now
from edge.classify import Classification, Classifier, crop_box, smooth
from edge.config import CameraSettings, NodeConfig
from edge.detect import Detection, DetectionResult, Detector
from edge.detect.nms import nms
from edge.ingest import MediaError, MediaItem, load_image
from edge.ingest.video import VIDEO_SUFFIXES, sample_video
from edge.motion import Region
from edge.motion.gate import DetectionGate
from edge.motion.improved import ImprovedMotionDetector
from edge.rules import Finding, Rule, Sighting
from edge.rules.basic import FreeRoamingDogRule, NightIntrusionRule, ObservationRule
from edge.rules.clusters import DeathLog
from edge.rules.counts import AbnormalCountRule
from edge.rules.guard import Guarded
from edge.rules.health import CameraHealthRule
from edge.rules.mortality import MortalityClusterRule, MotionlessBirdRule
from edge.rules.risk import HighRiskSpeciesRule
from edge.rules.state import RuleState
from edge.track import Track, iou
from edge.track.iou_tracker import IouTracker
from models.species import Catalogue, load_catalogue

log = logging.getLogger(__name__)

# Camera traps fire 1-10 frames per trigger. A longer "burst" is a folder whose files have no
# capture time (they all fall back to about the same file time): smoothing species over it
# would mix unrelated birds, so a burst is closed after this many frames.
MAX_BURST_FRAMES = 10
MERGE_IOU = 0.5  # live: boxes of overlapping motion crops that are the same object
TRACK_CALLS = 10  # species calls averaged per track: enough to steady it, recent enough to change
TRACK_MATCH_IOU = 0.9  # a matched track carries this frame's box, so the overlap is near 1


def build_rules(
    config: NodeConfig, state: RuleState | None = None, catalogue: Catalogue | None = None
) -> list[Rule]:
    """The rules this node runs, in order, from its configuration (state: data_dir/rules.db)."""
    rs = config.rules
    state = state if state is not None else RuleState.for_data_dir(config.data_dir)
    catalogue = catalogue if catalogue is not None else load_catalogue(config.catalogue)
    # Suspected deaths and the clusters raised on them live in rules.db beside the counts: a
    # restart between the second and the third dead bird must not lose the cluster.
    deaths = DeathLog(state, rs.mortality_cluster.window_h)
    rules: list[Rule] = [Guarded(ObservationRule(), rs, state)]
    candidates: list[tuple[Rule, float]] = [
        (
            MotionlessBirdRule(rs.motionless_bird, state, deaths, catalogue),
            rs.motionless_bird.cooldown_min,
        ),
        (MortalityClusterRule(rs.mortality_cluster, deaths), 0.0),  # idempotent per window
        (AbnormalCountRule(rs.abnormal_count, state, catalogue), rs.abnormal_count.cooldown_min),
        (NightIntrusionRule(rs), rs.night_intrusion.cooldown_min),
        (FreeRoamingDogRule(rs.free_roaming_dog.severity), rs.free_roaming_dog.cooldown_min),
        (HighRiskSpeciesRule(rs, catalogue), rs.high_risk_species.cooldown_min),
        (CameraHealthRule(rs.camera_health), rs.camera_health.cooldown_min),
    ]
    for rule, cooldown in candidates:
        if getattr(rs, rule.name).enabled:
            rules.append(Guarded(rule, rs, state, cooldown))
    return rules


@dataclass(frozen=True, slots=True)
class Look:
    """What perception made of one still, clip or live frame, before the rules decide.

    `image` holds the pixels only where they cannot be read again from `item` (a clip's best
    frame, a live frame): a burst of camera-trap stills waits for its last frame without
    holding megabytes per frame.
    """

    sighting: Sighting
    result: DetectionResult
    item: MediaItem | None = None
    image: npt.NDArray[Any] | None = None


@dataclass(frozen=True, slots=True)
class Analysis:
    """Detections and the events they led to for one still, clip or live frame."""

    result: DetectionResult
    events: list[EventPayload]
    item: MediaItem | None = None
    species: Mapping[int, Classification] = field(default_factory=dict)
    image: npt.NDArray[Any] | None = None
    # event_id -> earlier media files behind that event (a motionless bird's first frame)
    earlier: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def pixels(self) -> npt.NDArray[Any]:
        """The analysed pixels (for evidence): kept ones, else the still decoded again."""
        if self.image is not None:
            return self.image
        if self.item is None:
            raise MediaError("no pixels kept for this frame")
        return load_image(self.item.path)


class Pipeline:
    """The node's models and rules; sources feed it through `stills()` and `live()` streams."""

    def __init__(
        self,
        config: NodeConfig,
        detector: Detector,
        rules: list[Rule],
        classifier: Classifier | None = None,
        *,
        rule_state: RuleState | None = None,
    ) -> None:
        self.config = config
        self.detector = detector
        self.rules = rules
        self.classifier = classifier
        self.crop_margin = config.classifier.crop_margin
        self.video_every_s = config.video_every_s
        self.rule_state = rule_state  # commands from central (background boxes) write to it
        # Rules keep per-camera state; live cameras and the drop folders decide on their own
        # threads, so deciding is serialised (perception, the expensive part, is not).
        self._decide_lock = threading.Lock()
        # called for each sampled frame of a clip: a long clip is progress, not a hung stage
        self.progress: Callable[[], None] = lambda: None

    # -- the streams sources feed ------------------------------------------------------------
    def stills(self) -> StillStream:
        """A stream for one camera's camera-trap stills and clips, in capture order."""
        return StillStream(self, self.config.burst_gap_s)

    def live(self, camera: CameraSettings) -> LiveStream:
        """A stream for one live camera's frames."""
        return LiveStream(self, camera)

    # -- look ---------------------------------------------------------------------------------
    def look(self, item: MediaItem, image: npt.NDArray[Any] | None = None) -> Look:
        """Decode (unless given the pixels), detect and classify the birds of a still; a clip
        is sampled and represented by its best frame. Raises MediaError for unusable media."""
        is_clip = item.path.suffix.lower() in VIDEO_SUFFIXES
        if is_clip:
            pixels, result = self._best_clip_frame(item)
        else:
            pixels = load_image(item.path) if image is None else image
            result = self.detector.detect(pixels)
        sighting = Sighting(
            camera=item.camera,
            captured_at=item.captured_at.astimezone(self.config.tz),
            detections=result.detections,
            width=result.width,
            height=result.height,
            source=item.path.name,
            model=result.model,
            species=self.classify(pixels, result),
        )
        return Look(sighting, result, item, pixels if is_clip else None)

    def classify(
        self, image: npt.NDArray[Any], result: DetectionResult
    ) -> dict[int, Classification]:
        """The classifier's species suggestion for every bird detection, by index."""
        if self.classifier is None:
            return {}
        species: dict[int, Classification] = {}
        for i, d in enumerate(result.detections):
            if d.category is Category.BIRD:
                crop = crop_box(image, (d.x1, d.y1, d.x2, d.y2), self.crop_margin)
                species[i] = self.classifier.classify(crop)
        return species

    def _best_clip_frame(self, item: MediaItem) -> tuple[npt.NDArray[Any], DetectionResult]:
        """One result per clip: the sampled frame whose detections score best (sum over
        categories of the top score), so a clip with a deer and a bird keeps the frame that
        shows both best."""
        best: tuple[float, npt.NDArray[Any], DetectionResult] | None = None
        for _t, frame in sample_video(item.path, self.video_every_s):
            self.progress()
            result = self.detector.detect(frame)
            top: dict[Category, float] = {}
            for d in result.detections:
                top[d.category] = max(top.get(d.category, 0.0), d.score)
            score = sum(top.values())
            if best is None or score > best[0]:
                best = (score, frame, result)
        if best is None:  # sample_video raises when nothing decodes; this is belt and braces
            raise MediaError("no frame decoded")
        return best[1], best[2]

    # -- decide -------------------------------------------------------------------------------
    def decide(self, look: Look) -> Analysis:
        """Apply the rules to what was seen and build the events."""
        item = look.item
        pairs = self._findings(look.sighting)
        source = look.sighting.source
        earlier = {
            str(ev.event_id): tuple(src for src in f.evidence if src != source)
            for ev, f in pairs
            if f.evidence
        }
        events = [ev for ev, _ in pairs]
        return Analysis(look.result, events, item, look.sighting.species, look.image, earlier)

    def camera_health(
        self,
        camera: str,
        state: CameraState,
        t: datetime,
        problem: tuple[str, str] | None = None,
    ) -> list[EventPayload]:
        """Events for a camera health change at time `t` when no frame comes with it;
        `problem` is why a network camera gives no frames (zh, en), when it said so."""
        sighting = Sighting(
            camera=camera,
            captured_at=t.astimezone(self.config.tz),
            detections=[],
            width=1,
            height=1,
            source=f"live:{camera}",
            model="",
            camera_state=state,
            camera_problem=problem,
        )
        return [ev for ev, _ in self._findings(sighting)]

    def _findings(self, sighting: Sighting) -> list[tuple[EventPayload, Finding]]:
        with self._decide_lock:
            findings = [f for rule in self.rules for f in rule.evaluate(sighting)]
        return [(self._event(sighting, f), f) for f in findings]

    def _event(self, s: Sighting, f: Finding) -> EventPayload:
        boxes = [
            Box.model_validate(
                dict(zip("xywh", d.normalised(s.width, s.height), strict=True))
                | {"category": d.category, "label": d.label, "confidence": round(d.score, 4)}
            )
            for d in f.detections
        ]
        return EventPayload(
            event_id=uuid.uuid4(),
            seq=1,  # numbered for real when the outbox stores it
            site=self.config.site,
            node=self.config.node,
            camera=s.camera,
            kind=f.kind,
            category=f.category,
            captured_at=f.started_at or s.captured_at,
            captured_until=f.until,
            created_at=utc_now(),
            rule=f.rule,
            severity=f.severity,
            count=f.count,
            confidence=round(f.confidence, 4),
            boxes=boxes,
            message_zh=f.message_zh,
            message_en=f.message_en,
            species=f.species,
            source=f.source or s.source,
            model=s.model,
        )


class StillStream:
    """One camera's camera-trap stills and clips, pushed in capture order.

    Frames less than `gap_s` apart form a burst (one trigger of the camera); a burst is decided
    when the next frame shows it is over, or when the source calls `flush()` (the end of a
    folder, or a drop folder gone quiet), with every bird's species smoothed over the burst.
    """

    def __init__(
        self, pipeline: Pipeline, gap_s: float, max_frames: int = MAX_BURST_FRAMES
    ) -> None:
        self.pipeline = pipeline
        self.gap_s = gap_s
        self.max_frames = max_frames
        self._burst: list[Look] = []

    @property
    def pending(self) -> list[MediaItem]:
        """Media looked at and waiting for the rest of their burst."""
        return [look.item for look in self._burst if look.item is not None]

    def push(self, item: MediaItem, image: npt.NDArray[Any] | None = None) -> list[Analysis]:
        """Look at one item; returns the analyses of the burst it closed (often none).
        Raises MediaError for unusable media (the stream is unchanged)."""
        look = self.pipeline.look(item, image)
        out: list[Analysis] = []
        if self._burst:
            last = self._burst[-1].sighting.captured_at
            gap = (look.sighting.captured_at - last).total_seconds()
            if gap > self.gap_s or gap < 0 or len(self._burst) >= self.max_frames:
                out = self.flush()
        self._burst.append(look)
        return out

    def flush(self) -> list[Analysis]:
        """Decide the burst waiting (if any) and return its analyses."""
        burst, self._burst = self._burst, []
        return [self.pipeline.decide(look) for look in smooth_burst(burst)]


def smooth_burst(looks: Sequence[Look]) -> list[Look]:
    """Replace each bird's classification by the average over all birds of the burst.

    Camera traps fire 3-10 frames per trigger at the same bird; one species call per burst is
    steadier than one per frame (the same idea as MegaDetector's sequence-level smoothing).
    """
    all_birds = [c for look in looks for c in look.sighting.species.values()]
    if len(all_birds) < 2:
        return list(looks)
    smoothed = smooth(all_birds)
    return [
        replace(look, sighting=replace(s, species=dict.fromkeys(s.species, smoothed)))
        for look in looks
        for s in (look.sighting,)
    ]


class LiveStream:
    """One live camera's frames: motion gate -> detector on the moving parts (or the whole
    frame) -> tracker -> classify birds, smoothed over each track -> rules."""

    def __init__(self, pipeline: Pipeline, camera: CameraSettings) -> None:
        self.pipeline = pipeline
        self.camera = camera.id
        self.motion = ImprovedMotionDetector(camera.motion)
        self.gate = DetectionGate(camera.gate)
        self.tracker = IouTracker(camera.tracker)
        self._calls: dict[int, deque[Classification]] = {}  # per track: its recent species calls

    def push(
        self,
        image: npt.NDArray[Any],
        t: float,
        captured_at: datetime,
        camera_state: CameraState | None = None,
    ) -> Analysis | None:
        """One frame at monotonic time `t`; None when the gate skipped it and nothing changed."""
        decision = self.gate.decide(self.motion.detect(image), image.shape, t)
        if decision.mode == "skip" and camera_state is None:
            return None
        h, w = image.shape[:2]
        detector = self.pipeline.detector
        if decision.mode == "full":
            result = detector.detect(image)
        elif decision.mode == "crops":
            result = detect_regions(detector, image, decision.crops)
        else:
            result = DetectionResult([], w, h, "", 0.0)
        tracks = self.tracker.update(result.detections, t) if decision.mode != "skip" else []
        sighting = Sighting(
            camera=self.camera,
            captured_at=captured_at,
            detections=result.detections,
            width=w,
            height=h,
            source=f"live:{self.camera}",
            model=result.model,
            tracks=tuple(tracks),
            track_t=t,
            camera_state=camera_state,
            species=self._species(image, result, tracks),
        )
        return self.pipeline.decide(Look(sighting, result, None, image))

    def _species(
        self, image: npt.NDArray[Any], result: DetectionResult, tracks: list[Track]
    ) -> dict[int, Classification]:
        """Classify each bird and smooth its species over its track (the same bird, frame
        after frame, should get one steady name)."""
        calls = self.pipeline.classify(image, result)
        live = {t.id for t in tracks}
        for gone in set(self._calls) - live:
            del self._calls[gone]
        species: dict[int, Classification] = {}
        for i, call in calls.items():
            track = _track_of(result.detections[i], tracks)
            if track is None:
                species[i] = call
                continue
            history = self._calls.setdefault(track.id, deque(maxlen=TRACK_CALLS))
            history.append(call)
            species[i] = smooth(list(history))
        return species


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
            found.append(replace(d, x1=d.x1 + c.x1, y1=d.y1 + c.y1, x2=d.x2 + c.x1, y2=d.y2 + c.y1))
    if len(found) > 1:
        boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in found], dtype=np.float32)
        scores = np.array([d.score for d in found], dtype=np.float32)
        classes = np.array([d.class_id for d in found], dtype=np.int64)
        found = [found[int(i)] for i in nms(boxes, scores, classes, MERGE_IOU)]
    return DetectionResult(found, w, h, model, infer_ms)


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


def build_pipeline(config: NodeConfig, detector: Detector | None = None) -> Pipeline:
    """The node's pipeline from its configuration (models are loaded here, once)."""
    from edge.classify import create as create_classifier
    from edge.classify.gallery import with_gallery
    from edge.detect import create as create_detector

    catalogue = load_catalogue(config.catalogue)
    state = RuleState.for_data_dir(config.data_dir)
    classifier = None
    if config.classifier.enabled:
        classifier = create_classifier(config.classifier, config.model_store, catalogue)
        classifier = with_gallery(classifier, config.gallery)
    return Pipeline(
        config,
        detector or create_detector(config.detector, config.model_store),
        build_rules(config, state, catalogue),
        classifier,
        rule_state=state,
    )
