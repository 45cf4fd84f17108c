"""The first rules: observations per category, people/vehicles at night, free-roaming dogs."""

from __future__ import annotations

from collections import defaultdict
from datetime import time

from broker.payloads import Category, EventKind, Severity
from broker.vocabulary import category_zh
from edge.detect import Detection
from edge.rules import Finding, Rule, Sighting


def in_hours(t: time, start: time, end: time) -> bool:
    """True when `t` lies in [start, end), a range that may wrap past midnight."""
    if start <= end:
        return start <= t < end
    return t >= start or t < end


def _by_category(detections: list[Detection]) -> dict[Category, list[Detection]]:
    groups: dict[Category, list[Detection]] = defaultdict(list)
    for d in detections:
        groups[d.category].append(d)
    return groups


class ObservationRule(Rule):
    """One observation per category seen, with the count: the raw material of daily counts."""

    name = "observation"

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """An observation for every category present."""
        out = []
        for category, dets in sorted(_by_category(sighting.detections).items()):
            zh = category_zh(category)
            out.append(
                Finding(
                    kind=EventKind.OBSERVATION,
                    category=category,
                    severity=Severity.INFO,
                    count=len(dets),
                    confidence=max(d.score for d in dets),
                    detections=dets,
                    message_zh=f"{sighting.camera} 拍到{len(dets)}个{zh}",
                    message_en=f"{sighting.camera} saw {len(dets)} {category.value}(s)",
                )
            )
        return out


class NightIntrusionRule(Rule):
    """A person or vehicle during night hours: suspected illegal hunting."""

    name = "night_intrusion"

    def __init__(self, start: time, end: time, severity: Severity = Severity.ALERT) -> None:
        self.start, self.end, self.severity = start, end, severity

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """One anomaly when people or vehicles appear inside the night hours."""
        if not in_hours(sighting.captured_at.timetz().replace(tzinfo=None), self.start, self.end):
            return []
        dets = [d for d in sighting.detections if d.category in (Category.PERSON, Category.VEHICLE)]
        if not dets:
            return []
        category = (
            Category.PERSON
            if any(d.category is Category.PERSON for d in dets)
            else (Category.VEHICLE)
        )
        when = sighting.captured_at.strftime("%H:%M")
        return [
            Finding(
                kind=EventKind.ANOMALY,
                category=category,
                severity=self.severity,
                count=len(dets),
                confidence=max(d.score for d in dets),
                detections=dets,
                rule=self.name,
                message_zh=f"夜间{when}在{sighting.camera}发现{len(dets)}个{category_zh(category)}，疑似盗猎",
                message_en=f"{len(dets)} {category.value}(s) at {sighting.camera} at {when} at "
                "night, suspected poaching",
            )
        ]


class FreeRoamingDogRule(Rule):
    """A dog inside the reserve: a threat to nesting birds and a rabies risk."""

    name = "free_roaming_dog"

    def __init__(self, severity: Severity = Severity.ALERT) -> None:
        self.severity = severity

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """One anomaly per sighting with dogs."""
        dogs = [d for d in sighting.detections if d.category is Category.DOG]
        if not dogs:
            return []
        return [
            Finding(
                kind=EventKind.ANOMALY,
                category=Category.DOG,
                severity=self.severity,
                count=len(dogs),
                confidence=max(d.score for d in dogs),
                detections=dogs,
                rule=self.name,
                message_zh=f"{sighting.camera}发现{len(dogs)}只犬在保护区内游荡，威胁鸟类繁殖并有狂犬病风险",
                message_en=f"{len(dogs)} free-roaming dog(s) at {sighting.camera}",
            )
        ]
