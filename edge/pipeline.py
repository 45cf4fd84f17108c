"""Where a frame becomes an event: decode -> detect -> rules -> contract payloads."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from broker.payloads import Box, EventPayload, utc_now
from edge.config import NodeConfig
from edge.detect import DetectionResult, Detector
from edge.ingest import MediaItem, load_image
from edge.rules import Finding, Rule, Sighting
from edge.rules.basic import FreeRoamingDogRule, NightIntrusionRule, ObservationRule

log = logging.getLogger(__name__)


def build_rules(config: NodeConfig) -> list[Rule]:
    """The rules this node runs, in order, from its configuration."""
    rules: list[Rule] = [ObservationRule()]
    ni = config.rules.night_intrusion
    if ni.enabled:
        rules.append(NightIntrusionRule(ni.start, ni.end, ni.severity))
    dog = config.rules.free_roaming_dog
    if dog.enabled:
        rules.append(FreeRoamingDogRule(dog.severity))
    return rules


@dataclass(frozen=True, slots=True)
class Analysis:
    """Detections and the events they led to for one media item."""

    item: MediaItem
    result: DetectionResult
    events: list[EventPayload]


class Pipeline:
    """Turns media items into events with one detector and a list of rules."""

    def __init__(self, config: NodeConfig, detector: Detector, rules: list[Rule]) -> None:
        self.config = config
        self.detector = detector
        self.rules = rules

    def analyse(self, item: MediaItem) -> Analysis:
        """Decode, detect and apply the rules; raises MediaError for unusable media."""
        image = load_image(item.path)
        result = self.detector.detect(image)
        sighting = Sighting(
            camera=item.camera,
            captured_at=item.captured_at.astimezone(self.config.tz),
            detections=result.detections,
            width=result.width,
            height=result.height,
            source=item.path.name,
            model=result.model,
        )
        findings = [f for rule in self.rules for f in rule.evaluate(sighting)]
        return Analysis(item, result, [self._event(sighting, f) for f in findings])

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
            captured_at=s.captured_at,
            created_at=utc_now(),
            rule=f.rule,
            severity=f.severity,
            count=f.count,
            confidence=round(f.confidence, 4),
            boxes=boxes,
            message_zh=f.message_zh,
            message_en=f.message_en,
            source=s.source,
            model=s.model,
        )
