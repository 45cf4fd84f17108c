"""The first rules: observations per category, people/vehicles at night, free-roaming dogs."""

from __future__ import annotations

from collections import defaultdict
from datetime import time
from typing import ClassVar

from broker.payloads import Category, EventKind, RuleName, Severity, SpeciesGuess
from edge.detect import Detection
from edge.rules import Finding, Rule, Sighting
from edge.rules.mortality import species_guess
from surveillance import messages
from surveillance.geometry import box_inside
from surveillance.settings import RuleSettings


def in_hours(t: time, start: time, end: time) -> bool:
    """True when `t` lies in [start, end), a range that may wrap past midnight."""
    if start <= end:
        return start <= t < end
    return t >= start or t < end


def by_category(detections: list[Detection]) -> dict[Category, list[Detection]]:
    """Detections grouped by category."""
    groups: dict[Category, list[Detection]] = defaultdict(list)
    for d in detections:
        groups[d.category].append(d)
    return groups


class ObservationRule(Rule):
    """One observation per category seen, with the count: the raw material of daily counts."""

    name = "observation"

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """An observation for every category present; birds split by identified species."""
        out = []
        index = {id(d): i for i, d in enumerate(sighting.detections)}
        for category, dets in sorted(by_category(sighting.detections).items()):
            groups: dict[str, list[Detection]] = {}
            guesses: dict[str, SpeciesGuess | None] = {}
            english: dict[str, str] = {}
            for d in dets:
                cls = sighting.species.get(index[id(d)])
                guess = species_guess(cls)
                key = guess.scientific_name if guess is not None else ""
                groups.setdefault(key, []).append(d)
                kept = guesses.get(key)
                if kept is None or (guess is not None and guess.confidence > kept.confidence):
                    guesses[key] = guess
                if cls is not None and cls.best is not None and cls.best.english_name:
                    english.setdefault(key, cls.best.english_name)
            for key, group in sorted(groups.items()):
                out.append(self._finding(sighting, category, group, guesses[key], english.get(key)))
        return out

    @staticmethod
    def _finding(
        sighting: Sighting,
        category: Category,
        dets: list[Detection],
        guess: SpeciesGuess | None,
        english: str | None,
    ) -> Finding:
        if guess is not None:
            zh = guess.chinese_name or guess.scientific_name
            what = messages.counted(category, len(dets), zh, english or guess.scientific_name)
        else:
            what = messages.counted(category, len(dets))
        text_zh, text_en = messages.render(
            messages.OBSERVATION, camera=sighting.camera, what_zh=what[0], what_en=what[1]
        )
        return Finding(
            kind=EventKind.OBSERVATION,
            category=category,
            severity=Severity.INFO,
            count=len(dets),
            confidence=max(d.score for d in dets),
            detections=dets,
            message_zh=text_zh,
            message_en=text_en,
            species=guess,
        )


class NightIntrusionRule(Rule):
    """A person or vehicle in night hours or in a restricted zone: suspected illegal hunting."""

    name: ClassVar[RuleName] = RuleName.NIGHT_INTRUSION

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings
        self.section = settings.night_intrusion

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """One anomaly when people or vehicles appear at night or inside a restricted zone."""
        dets = [d for d in sighting.detections if d.category in (Category.PERSON, Category.VEHICLE)]
        if not dets:
            return []
        cam = self.settings.camera(sighting.camera)
        start = cam.night_start or self.section.start
        end = cam.night_end or self.section.end
        local = sighting.captured_at.timetz().replace(tzinfo=None)
        when = sighting.captured_at.strftime("%H:%M")
        zone_name = ""
        if not in_hours(local, start, end):
            restricted = [z for z in cam.zones if z.kind == "restricted"]
            hits: list[Detection] = []
            for zone in restricted:
                inside = [
                    d
                    for d in dets
                    if box_inside(d.normalised(sighting.width, sighting.height), zone.polygon)
                ]
                if inside:
                    zone_name, hits = zone.name, inside
                    break
            if not hits:
                return []
            dets = hits
        people = sum(d.category is Category.PERSON for d in dets)
        category = Category.PERSON if people else Category.VEHICLE
        counts = {Category.PERSON: people, Category.VEHICLE: len(dets) - people}
        zh, en = messages.tally({c: n for c, n in counts.items() if n})
        template = messages.ZONE_INTRUSION if zone_name else messages.NIGHT_INTRUSION
        text_zh, text_en = messages.render(
            template, when=when, camera=sighting.camera, what_zh=zh, what_en=en, zone=zone_name
        )
        return [
            Finding(
                kind=EventKind.ANOMALY,
                category=category,
                severity=self.section.severity,
                count=len(dets),
                confidence=max(d.score for d in dets),
                detections=dets,
                rule=self.name,
                message_zh=text_zh,
                message_en=text_en,
            )
        ]


class FreeRoamingDogRule(Rule):
    """A dog inside the reserve: a threat to nesting birds and a rabies risk."""

    name: ClassVar[RuleName] = RuleName.FREE_ROAMING_DOG

    def __init__(self, severity: Severity = Severity.ALERT) -> None:
        self.severity = severity

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """One anomaly per sighting with dogs."""
        dogs = [d for d in sighting.detections if d.category is Category.DOG]
        if not dogs:
            return []
        text_zh, text_en = messages.render(
            messages.FREE_ROAMING_DOG, camera=sighting.camera, count=len(dogs)
        )
        return [
            Finding(
                kind=EventKind.ANOMALY,
                category=Category.DOG,
                severity=self.severity,
                count=len(dogs),
                confidence=max(d.score for d in dogs),
                detections=dogs,
                rule=self.name,
                message_zh=text_zh,
                message_en=text_en,
            )
        ]
