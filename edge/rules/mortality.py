"""Suspected deaths on the edge: motionless birds, static objects and mortality clusters.

The deaths and the cluster logic themselves live in surveillance/clusters.py (central uses them
too); the node keeps its deaths in edge/rules/clusters.py.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from broker.payloads import Category, EventKind, RuleName, Severity, SpeciesGuess
from edge.classify import Classification
from edge.detect import Detection
from edge.rules import Finding, Rule, Sighting
from edge.rules.clusters import DeathLog
from edge.rules.state import RuleState
from edge.track import Track
from models.species import Catalogue
from surveillance import messages
from surveillance.clusters import cluster_species, cluster_text, death_of, find_clusters
from surveillance.geometry import NormBox, box_iou
from surveillance.settings import MortalityClusterSettings, MotionlessBirdSettings

log = logging.getLogger(__name__)

STATIC_OBJECT = RuleName.STATIC_OBJECT  # the one review observation for a static object
# A still bird may be missed by the detector in this many successive images of its camera; a bird
# that walks off and comes back later must not count as one that never moved.
MAX_MISSED = 2
# A track that started within this many seconds of the camera's first frame was there from
# the start: a static-object candidate.
SCENE_START_S = 1.0


@dataclass
class _Candidate:
    box: NormBox
    first_at: datetime
    first_source: str
    last_at: datetime
    last_source: str
    detection: Detection
    classification: Classification | None
    static: bool
    frames: int = 1
    missed: int = 0  # successive sightings of the camera without this box
    raised: bool = False


def species_guess(c: Classification | None) -> SpeciesGuess | None:
    """The accepted species (or genus/family) of a classification, as the payload carries it."""
    if c is None or c.best is None:
        return None
    return SpeciesGuess(
        scientific_name=c.best.scientific_name[:120],
        chinese_name=c.best.chinese_name[:60],
        confidence=round(min(max(c.best.probability, 0.0), 1.0), 4),
    )


def bird_names(c: Classification | None) -> tuple[str, str]:
    """Chinese and English name of a bird: its species when classified, else 'bird'."""
    if c is not None and c.best is not None:
        return c.best.chinese_name or c.best.scientific_name, c.best.english_name
    return messages.noun(Category.BIRD)


class MotionlessBirdRule(Rule):
    """A bird that has not moved for `still_min` minutes: suspected dead or moribund."""

    name: ClassVar[RuleName] = RuleName.MOTIONLESS_BIRD

    def __init__(
        self,
        settings: MotionlessBirdSettings,
        state: RuleState,
        deaths: DeathLog,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.deaths = deaths
        self.catalogue = catalogue
        self._candidates: dict[str, list[_Candidate]] = defaultdict(list)
        self._raised_tracks: dict[str, set[int]] = defaultdict(set)

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """Follow still birds across sightings; one finding when one has been still long enough."""
        first = self.state.first_seen(sighting.camera)
        if first is None:
            self.state.set_first_seen(sighting.camera, sighting.captured_at)
            first = sighting.captured_at
        if sighting.track_t is not None:
            return self._from_tracks(sighting, first)
        return self._from_stills(sighting, first)

    def _from_stills(self, s: Sighting, first: datetime) -> list[Finding]:
        cfg = self.settings
        gap = timedelta(minutes=cfg.max_gap_min)
        candidates = [c for c in self._candidates[s.camera] if s.captured_at - c.last_at <= gap]
        seen: list[_Candidate] = []
        for i, d in enumerate(s.detections):
            if d.category is not Category.BIRD:
                continue
            box = d.normalised(s.width, s.height)
            free = [c for c in candidates if c not in seen]
            best = max(free, key=lambda c: box_iou(c.box, box), default=None)
            if best is not None and box_iou(best.box, box) >= cfg.min_iou:
                best.last_at, best.last_source, best.detection = s.captured_at, s.source, d
                best.frames += 1
                best.classification = s.species.get(i) or best.classification
                seen.append(best)
            else:
                c = _Candidate(
                    box=box,
                    first_at=s.captured_at,
                    first_source=s.source,
                    last_at=s.captured_at,
                    last_source=s.source,
                    detection=d,
                    classification=s.species.get(i),
                    static=s.captured_at <= first,
                )
                candidates.append(c)
                seen.append(c)
        for c in candidates:
            c.missed = 0 if c in seen else c.missed + 1
        self._candidates[s.camera] = [c for c in candidates if c.missed <= MAX_MISSED]
        out = []
        for c in seen:
            still = c.last_at - c.first_at
            if c.raised or c.frames < cfg.min_frames or still < timedelta(minutes=cfg.still_min):
                continue
            c.raised = True
            f = self._finding(s, c.detection, c.classification, c.first_at, c.static, c)
            if f is not None:
                out.append(f)
        return out

    def _from_tracks(self, s: Sighting, first: datetime) -> list[Finding]:
        assert s.track_t is not None
        t = s.track_t
        raised = self._raised_tracks[s.camera]
        raised &= {tr.id for tr in s.tracks}
        out = []
        for tr in s.tracks:
            if tr.category is not Category.BIRD or tr.id in raised:
                continue
            still_s = tr.stationary_s(t)
            if still_s < self.settings.still_min * 60:
                continue
            raised.add(tr.id)
            since = s.captured_at - timedelta(seconds=still_s)
            born = s.captured_at - timedelta(seconds=tr.age_s(t))
            static = (born - first).total_seconds() <= SCENE_START_S
            index, det = _detection_of(tr, s.detections)
            cls = s.species.get(index) if index is not None else None
            f = self._finding(s, det, cls, since, static, None)
            if f is not None:
                out.append(f)
        return out

    def _finding(
        self,
        s: Sighting,
        d: Detection,
        cls: Classification | None,
        since: datetime,
        static: bool,
        c: _Candidate | None,
    ) -> Finding | None:
        """The finding for a bird still since `since`; None when it is a carcass known already."""
        start_source = c.first_source if c is not None else s.source
        if static:
            log.info("%s: bird-like object still since the first frame: static object?", s.camera)
            zh, en = messages.render(messages.STATIC_OBJECT, camera=s.camera)
            return Finding(
                kind=EventKind.OBSERVATION,
                category=Category.BIRD,
                severity=Severity.INFO,
                count=1,
                confidence=d.score,
                detections=[d],
                rule=STATIC_OBJECT,
                message_zh=zh,
                message_en=en,
                started_at=since,
                until=s.captured_at,
                evidence=(start_source, s.source),
            )
        guess = species_guess(cls)
        death = death_of(
            t=s.captured_at,
            camera=s.camera,
            scientific_name=guess.scientific_name if guess else None,
            catalogue=self.catalogue,
            source=s.source,
            ref=f"{s.camera}/{s.source}/{d.x1:.0f},{d.y1:.0f}",
            box=d.normalised(s.width, s.height),
        )
        # A camera trap fires again hours later (another animal passes) and sees the same
        # carcass still again: that is the bird already recorded, not a new death.
        known = self.deaths.same_carcass(death, self.settings.same_bird_iou)
        if known is not None:
            self.deaths.refresh(known, s.captured_at)
            log.info(
                "%s: still bird at %s is the carcass recorded at %s", s.camera, s.source, known.t
            )
            return None
        self.deaths.add(death)
        zh_name, en_name = bird_names(cls)
        minutes = int((s.captured_at - since).total_seconds() // 60)
        zh, en = messages.render(
            messages.MOTIONLESS_BIRD, count=1, what_zh=zh_name, what_en=en_name, minutes=minutes
        )
        return Finding(
            kind=EventKind.ANOMALY,
            category=Category.BIRD,
            severity=self.settings.severity,
            count=1,
            confidence=d.score,
            detections=[d],
            rule=self.name,
            message_zh=zh,
            message_en=en,
            started_at=since,
            until=s.captured_at,
            species=guess,
            evidence=(start_source, s.source),
            subject=death.ref,  # each dead bird is its own incident
        )


def _detection_of(track: Track, detections: list[Detection]) -> tuple[int | None, Detection]:
    """The detection of this frame that is the track's box, or a detection made from the box."""
    for i, d in enumerate(detections):
        if (d.x1, d.y1, d.x2, d.y2) == track.box and d.category is track.category:
            return i, d
    x1, y1, x2, y2 = track.box
    return None, Detection(x1, y1, x2, y2, track.score, -1, track.label, track.category)


class MortalityClusterRule(Rule):
    """Several suspected deaths of one species or risk group, or one protected bird: critical.

    One alarm per incident: deaths already reported are never raised again; new deaths joining
    a reported incident make a follow-up (续报) naming the new total (see find_clusters).
    """

    name: ClassVar[RuleName] = RuleName.MORTALITY_CLUSTER

    def __init__(self, settings: MortalityClusterSettings, deaths: DeathLog) -> None:
        self.settings = settings
        self.deaths = deaths

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """Clusters among the node's deaths up to this sighting (run after motionless_bird)."""
        now = sighting.captured_at
        self.deaths.prune(now - timedelta(hours=self.settings.window_h))
        out = []
        for c in find_clusters(
            self.deaths.deaths, now=now, settings=self.settings, raised=self.deaths.raised
        ):
            last = max(d.t for d in c.deaths)
            self.deaths.mark_raised(c.keys, last)
            zh, en = cluster_text(c, self.settings)
            log.warning(
                "mortality cluster %s: %d deaths (%d new)%s",
                c.key,
                c.total,
                len(c.new),
                ", follow-up" if c.follow_up else "",
            )
            out.append(
                Finding(
                    kind=EventKind.ANOMALY,
                    category=Category.BIRD,
                    severity=self.settings.severity,
                    count=c.total,
                    confidence=1.0,
                    rule=self.name,
                    message_zh=zh,
                    message_en=en,
                    started_at=c.deaths[0].t,
                    until=last,
                    source=c.source,
                    species=cluster_species(c),
                    evidence=tuple(d.source for d in c.deaths),
                    subject=c.key,
                )
            )
        return out
