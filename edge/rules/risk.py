"""high_risk_species: an avian-influenza high-risk bird inside a zone near poultry or people."""

from __future__ import annotations

from broker.payloads import Category, EventKind
from edge.rules import Finding, Rule, Sighting, messages
from edge.rules.geometry import box_inside
from edge.rules.mortality import species_guess
from edge.rules.settings import RuleSettings
from models.species import RISK_GROUPS, Catalogue


class HighRiskSpeciesRule(Rule):
    """Ducks, geese, swans, gulls or grebes (configurable) close to poultry or people."""

    name = "high_risk_species"

    def __init__(self, settings: RuleSettings, catalogue: Catalogue) -> None:
        self.settings = settings
        self.section = settings.high_risk_species
        self.catalogue = catalogue

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """One anomaly per zone holding classified high-risk birds (needs the classifier)."""
        zones = [
            z
            for z in self.settings.camera(sighting.camera).zones
            if z.kind in self.section.zone_kinds
        ]
        if not zones or not sighting.species:
            return []
        groups = set(self.section.groups)
        out = []
        for zone in zones:
            hits = []
            for i, c in sorted(sighting.species.items()):
                if i >= len(sighting.detections) or c.best is None:
                    continue
                d = sighting.detections[i]
                sp = self.catalogue.get(c.best.scientific_name)
                if d.category is not Category.BIRD or sp is None or sp.risk_group not in groups:
                    continue
                if box_inside(d.normalised(sighting.width, sighting.height), zone.polygon):
                    hits.append((d, c, sp))
            if not hits:
                continue
            _, c0, sp0 = max(hits, key=lambda h: h[0].score)
            key = self.settings.is_key_period(sighting.captured_at.month)
            kind_zh, kind_en = messages.ZONE_KINDS[zone.kind]
            group_zh, group_en = RISK_GROUPS[sp0.risk_group]
            zh, en = messages.render(
                messages.HIGH_RISK_SPECIES,
                camera=sighting.camera,
                count=len(hits),
                what_zh=sp0.chinese_name,
                what_en=sp0.english_name,
                group_zh=group_zh,
                group_en=group_en,
                zone=zone.name,
                zone_kind_zh=kind_zh,
                zone_kind_en=kind_en,
            )
            out.append(
                Finding(
                    kind=EventKind.ANOMALY,
                    category=Category.BIRD,
                    severity=self.section.key_severity if key else self.section.severity,
                    count=len(hits),
                    confidence=max(h[0].score for h in hits),
                    detections=[h[0] for h in hits],
                    rule=self.name,
                    message_zh=zh,
                    message_en=en,
                    species=species_guess(c0),
                )
            )
        return out
