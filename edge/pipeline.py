"""Where a frame becomes an event: decode -> detect -> classify birds -> rules -> payloads.

`look` is the perception half (pixels to detections and species), `decide` the surveillance half
(detections to events); a burst of camera-trap frames is looked at frame by frame, its bird
classifications smoothed over the burst, then decided.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from broker.payloads import Box, CameraState, Category, EventPayload, utc_now
from edge.classify import Classification, Classifier, crop_box, smooth
from edge.config import NodeConfig
from edge.detect import DetectionResult, Detector
from edge.ingest import MediaError, MediaItem, load_image
from edge.ingest.video import VIDEO_SUFFIXES, sample_video
from edge.rules import Finding, Rule, Sighting
from edge.rules.basic import FreeRoamingDogRule, NightIntrusionRule, ObservationRule
from edge.rules.clusters import DeathLog
from edge.rules.counts import AbnormalCountRule
from edge.rules.guard import Guarded
from edge.rules.health import CameraHealthRule
from edge.rules.mortality import MortalityClusterRule, MotionlessBirdRule
from edge.rules.risk import HighRiskSpeciesRule
from edge.rules.state import RuleState
from models.species import Catalogue, load_catalogue

log = logging.getLogger(__name__)


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
    """What perception made of one media item: pixels, detections and bird species."""

    item: MediaItem
    image: npt.NDArray[Any]
    result: DetectionResult
    species: Mapping[int, Classification] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Analysis:
    """Detections and the events they led to for one media item."""

    item: MediaItem
    result: DetectionResult
    events: list[EventPayload]
    species: Mapping[int, Classification] = field(default_factory=dict)
    image: npt.NDArray[np.uint8] | None = None
    # event_id -> earlier media files behind that event (a motionless bird's first frame)
    earlier: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class Pipeline:
    """Turns media items into events with one detector, an optional classifier and rules."""

    def __init__(
        self,
        config: NodeConfig,
        detector: Detector,
        rules: list[Rule],
        classifier: Classifier | None = None,
        crop_margin: float = 0.1,
        video_every_s: float = 1.0,
    ) -> None:
        self.config = config
        self.detector = detector
        self.rules = rules
        self.classifier = classifier
        self.crop_margin = crop_margin
        self.video_every_s = video_every_s
        # Rules keep per-camera state; live cameras and the drop folder decide on their own
        # threads, so deciding is serialised (detection, the expensive part, is not).
        self._decide_lock = threading.Lock()
        self.rule_state: RuleState | None = None  # set by build_pipeline; commands write to it

    def look(self, item: MediaItem, image: npt.NDArray[Any] | None = None) -> Look:
        """Decode (unless given the pixels), detect and classify the birds; a video clip is
        sampled and represented by its best frame. Raises MediaError for unusable media."""
        if item.path.suffix.lower() in VIDEO_SUFFIXES:
            pixels, result = self._best_clip_frame(item)
        else:
            pixels = load_image(item.path) if image is None else image
            result = self.detector.detect(pixels)
        species: dict[int, Classification] = {}
        if self.classifier is not None:
            for i, d in enumerate(result.detections):
                if d.category is Category.BIRD:
                    crop = crop_box(pixels, (d.x1, d.y1, d.x2, d.y2), self.crop_margin)
                    species[i] = self.classifier.classify(crop)
        return Look(item, pixels, result, species)

    def _best_clip_frame(self, item: MediaItem) -> tuple[npt.NDArray[Any], DetectionResult]:
        """One result per clip: the sampled frame whose detections score best (sum over
        categories of the top score), so a clip with a deer and a bird keeps the frame that
        shows both best."""
        best: tuple[float, npt.NDArray[Any], DetectionResult] | None = None
        for _t, frame in sample_video(item.path, self.video_every_s):
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

    def analyse(self, item: MediaItem, image: npt.NDArray[Any] | None = None) -> Analysis:
        """Look and decide for one media item."""
        return self.decide(self.look(item, image))

    def analyse_burst(self, looks: Sequence[Look]) -> list[Analysis]:
        """Decide a burst with every bird's species smoothed over the burst's frames."""
        return [self.decide(look) for look in smooth_burst(looks)]

    def decide(self, look: Look) -> Analysis:
        """Apply the rules to what was seen and build the events."""
        item, result = look.item, look.result
        sighting = Sighting(
            camera=item.camera,
            captured_at=item.captured_at.astimezone(self.config.tz),
            detections=result.detections,
            width=result.width,
            height=result.height,
            source=item.path.name,
            model=result.model,
            species=look.species,
        )
        pairs = self._findings(sighting)
        earlier = {
            str(ev.event_id): tuple(src for src in f.evidence if src != item.path.name)
            for ev, f in pairs
            if f.evidence
        }
        events = [ev for ev, _ in pairs]
        return Analysis(item, result, events, look.species, look.image, earlier)

    def events_for(self, sighting: Sighting) -> list[EventPayload]:
        """Every rule's findings for one sighting, as contract events."""
        return [ev for ev, _ in self._findings(sighting)]

    def _findings(self, sighting: Sighting) -> list[tuple[EventPayload, Finding]]:
        with self._decide_lock:
            findings = [f for rule in self.rules for f in rule.evaluate(sighting)]
        return [(self._event(sighting, f), f) for f in findings]

    def camera_health(self, camera: str, state: CameraState, t: datetime) -> list[EventPayload]:
        """Events for a CameraHealthMonitor state change of a live camera at time `t`."""
        sighting = Sighting(
            camera=camera,
            captured_at=t.astimezone(self.config.tz),
            detections=[],
            width=1,
            height=1,
            source="live",
            model="",
            camera_state=state,
        )
        return self.events_for(sighting)

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


def smooth_burst(looks: Sequence[Look]) -> list[Look]:
    """Replace each bird's classification by the average over all birds of the burst.

    Camera traps fire 3-10 frames per trigger at the same bird; one species call per burst is
    steadier than one per frame (the same idea as MegaDetector's sequence-level smoothing).
    """
    all_birds = [c for look in looks for c in look.species.values()]
    if len(all_birds) < 2:
        return list(looks)
    smoothed = smooth(all_birds)
    return [replace(look, species=dict.fromkeys(look.species, smoothed)) for look in looks]


def build_pipeline(config: NodeConfig, detector: Detector | None = None) -> Pipeline:
    """The node's pipeline from its configuration (models are loaded here, once)."""
    from edge.classify import create as create_classifier
    from edge.detect import create as create_detector

    catalogue = load_catalogue(config.catalogue)
    state = RuleState.for_data_dir(config.data_dir)
    classifier = None
    if config.classifier.enabled:
        classifier = create_classifier(config.classifier, config.model_store, catalogue)
    pipeline = Pipeline(
        config,
        detector or create_detector(config.detector, config.model_store),
        build_rules(config, state, catalogue),
        classifier,
        crop_margin=config.classifier.crop_margin,
        video_every_s=config.video_every_s,
    )
    pipeline.rule_state = state
    return pipeline
