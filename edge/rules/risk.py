"""high_risk_species: an avian-influenza high-risk bird inside a zone near poultry or people."""

from __future__ import annotations

from typing import ClassVar

from broker.payloads import Category, EventKind, RuleName
from edge.rules import Finding, Rule, Sighting
from edge.rules.mortality import species_guess
from models.species import RISK_GROUPS, Catalogue
from surveillance import messages
from surveillance.geometry import box_inside
from surveillance.settings import RuleSettings


class HighRiskSpeciesRule(Rule):
    """Ducks, geese, swans, gulls or grebes (configurable) close to poultry or people."""

    name: ClassVar[RuleName] = RuleName.HIGH_RISK_SPECIES

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
                # a genus or family (classifier roll-up) counts when all its species are high-risk
                sp = self.catalogue.taxon(c.best.scientific_name)
                if d.category is not Category.BIRD or sp is None or sp.risk_group not in groups:
                    continue
                if box_inside(d.normalised(sighting.width, sighting.height), zone.polygon):
                    hits.append((d, c, sp))
            if not hits:
                continue
            _, c0, sp0 = max(hits, key=lambda h: h[0].score)
            key = self.settings.is_key_period(sighting.captured_at.month)
            kind_zh, kind_en = messages.ZONE_KINDS[zone.kind]
            # the best-seen bird first, then the other kinds (绿头鸭、红嘴鸥)
            taxa = list(dict.fromkeys([sp0, *(h[2] for h in hits)]))
            names = [(t.display_zh, t.english_name) for t in taxa]
            found = list(dict.fromkeys(RISK_GROUPS[t.risk_group or ""] for t in taxa))
            zh, en = messages.render(
                messages.HIGH_RISK_SPECIES,
                camera=sighting.camera,
                count=len(hits),
                what_zh="、".join(n[0] for n in names),
                what_en=", ".join(messages.plural_en(n[1], len(hits)) for n in names),
                group_zh="、".join(g[0] for g in found),
                group_en=", ".join(g[1] for g in found),
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
                    subject=zone.name,
                )
            )
        return out
