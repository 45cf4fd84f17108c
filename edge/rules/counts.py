"""abnormal_count: a camera's daily count far from its recent median (robust: median and MAD)."""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import ClassVar

from broker.payloads import Category, EventKind, RuleName, SpeciesGuess
from edge.rules import Finding, Rule, Sighting
from edge.rules.state import RuleState
from models.species import Catalogue
from surveillance import messages
from surveillance.settings import AbnormalCountSettings

log = logging.getLogger(__name__)

# MAD of a normal distribution is 0.6745 sigma; this scales it to a standard deviation.
MAD_TO_SIGMA = 1.4826
# Floor of the spread: a perfectly steady history (MAD 0) must not make a change of one animal
# infinitely surprising; counts are roughly Poisson, so the floor grows with sqrt(median).
MIN_SCALE = 0.5
POISSON_FACTOR = 0.5
SPECIES_KEY = "species:"


@dataclass(frozen=True, slots=True)
class Baseline:
    """Median and robust spread of a count over past days."""

    median: float
    scale: float
    days: int


def baseline(history: Sequence[int]) -> Baseline:
    """Median and robust spread (MAD scaled to sigma, floored) of daily counts."""
    med = float(statistics.median(history))
    mad = float(statistics.median(abs(x - med) for x in history))
    scale = max(MAD_TO_SIGMA * mad, MIN_SCALE, POISSON_FACTOR * math.sqrt(med))
    return Baseline(med, scale, len(history))


def robust_z(x: float, b: Baseline) -> float:
    """How many robust standard deviations `x` lies from the median."""
    return (x - b.median) / b.scale


def sighting_counts(
    s: Sighting, categories: Sequence[Category], *, species: bool = True
) -> dict[str, int]:
    """Counts of one image: per configured category, and per classified species."""
    cats = Counter(d.category.value for d in s.detections if d.category in categories)
    out = dict(cats)
    if species:
        for i, c in s.species.items():
            if c.best is not None and c.best.rank == "species" and i < len(s.detections):
                key = SPECIES_KEY + c.best.scientific_name
                out[key] = out.get(key, 0) + 1
    return out


class AbnormalCountRule(Rule):
    """Daily counts (MaxN: the most seen in one image) compared with the camera's baseline."""

    name: ClassVar[RuleName] = RuleName.ABNORMAL_COUNT

    def __init__(
        self,
        settings: AbnormalCountSettings,
        state: RuleState,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.catalogue = catalogue

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """Rises during the day as they happen; drops when the day is over (next day's image)."""
        cam, day = sighting.camera, sighting.captured_at.date()
        out: list[Finding] = []
        last = self.state.last_active_day(cam)
        if last is not None and last < day:
            out += self._close_day(sighting, last)
        counts = sighting_counts(sighting, self.settings.categories)
        self.state.record_counts(cam, day, counts)
        today = self.state.day_counts(cam, day)
        for key in sorted(counts):
            f = self._check(sighting, key, today[key], day, closing=False)
            if f is not None:
                out.append(f)
        return out

    def _close_day(self, s: Sighting, day: date) -> list[Finding]:
        history_days = self.state.active_days(s.camera, day, self.settings.baseline_days)
        counts = self.state.day_counts(s.camera, day)
        keys = self.state.keys(s.camera, history_days) | set(counts)
        out = []
        for key in sorted(keys):
            f = self._check(s, key, counts.get(key, 0), day, closing=True)
            if f is not None:
                out.append(f)
        return out

    def _check(self, s: Sighting, key: str, x: int, day: date, *, closing: bool) -> Finding | None:
        cfg = self.settings
        days = self.state.active_days(s.camera, day, cfg.baseline_days)
        if len(days) < cfg.min_history_days:
            return None
        b = baseline(self.state.history(s.camera, key, days))
        z = robust_z(x, b)
        alarm, _ = self.state.alarm(s.camera, key)
        if z >= cfg.z_on and x - b.median >= cfg.min_delta:
            if alarm == "high":
                return None
            self.state.set_alarm(s.camera, key, "high", day)
            return self._finding(s, key, x, b, day, rise=True)
        if closing and z <= -cfg.z_on and b.median - x >= cfg.min_delta:
            if alarm == "low":
                return None
            self.state.set_alarm(s.camera, key, "low", day)
            return self._finding(s, key, x, b, day, rise=False)
        if closing and alarm != "normal" and abs(z) < cfg.z_off:
            self.state.set_alarm(s.camera, key, "normal", day)  # hysteresis: re-armed
        return None

    def _finding(
        self, s: Sighting, key: str, x: int, b: Baseline, day: date, *, rise: bool
    ) -> Finding:
        zh, en, category, guess = self._names(key)
        template = messages.COUNT_RISE if rise else messages.COUNT_DROP
        text_zh, text_en = messages.render(
            template,
            camera=s.camera,
            day=day.isoformat(),
            what_zh=zh,
            what_en=en,
            count=x,
            unit=messages.unit(category),
            days=b.days,
            median=f"{b.median:g}",
        )
        log.info("abnormal count %s at %s: %d vs median %.1f", key, s.camera, x, b.median)
        tz = s.captured_at.tzinfo
        start = datetime.combine(day, time(0, 0), tz)
        same_day = s.captured_at.date() == day
        until = s.captured_at if same_day else start + timedelta(days=1) - timedelta(seconds=1)
        return Finding(
            kind=EventKind.ANOMALY,
            category=category,
            severity=self.settings.severity,
            count=x,
            confidence=1.0,
            detections=[d for d in s.detections if d.category is category] if same_day else [],
            rule=self.name,
            message_zh=text_zh,
            message_en=text_en,
            started_at=start,
            until=max(until, start),
            source=s.source if same_day else f"daily_count:{day.isoformat()}",
            species=guess,
            subject=f"{key}:{'high' if rise else 'low'}",  # a dog surge is not a bird surge
        )

    def _names(self, key: str) -> tuple[str, str, Category, SpeciesGuess | None]:
        if key.startswith(SPECIES_KEY):
            sci = key[len(SPECIES_KEY) :]
            sp = self.catalogue.get(sci) if self.catalogue else None
            zh, en = (sp.chinese_name, sp.english_name) if sp else (sci, sci)
            guess = SpeciesGuess(scientific_name=sci, chinese_name=zh, confidence=1.0)
            return zh, en, Category.BIRD, guess
        category = Category(key)
        zh, en = messages.category_names(category)
        return zh, en, category, None
