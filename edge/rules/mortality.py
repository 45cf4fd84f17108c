"""Suspected deaths: motionless birds, static objects, and mortality clusters (edge and central)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broker.payloads import Category, EventKind, Severity, SpeciesGuess
from edge.classify import Classification
from edge.detect import Detection
from edge.rules import Finding, Rule, Sighting, messages
from edge.rules.geometry import NormBox, box_iou
from edge.rules.settings import MortalityClusterSettings, MotionlessBirdSettings
from edge.rules.state import RuleState
from edge.track import Track
from models.species import RISK_GROUPS, Catalogue

log = logging.getLogger(__name__)

STATIC_OBJECT = "static_object"  # rule name of the one review observation for a static object
CLUSTER_SOURCE = "mortality_cluster:"  # source prefix of cluster events; the keys follow
# A still bird may be missed by the detector in this many successive images of its camera; a bird
# that walks off and comes back later must not count as one that never moved.
MAX_MISSED = 2
# A track that started within this many seconds of the camera's first frame was there from
# the start: a static-object candidate.
SCENE_START_S = 1.0


@dataclass(frozen=True, slots=True)
class Death:
    """One suspected dead bird (a motionless_bird finding) as the cluster logic needs it."""

    t: datetime
    camera: str
    node: str = ""
    scientific_name: str | None = None
    chinese_name: str = ""
    english_name: str = ""
    risk_group: str | None = None
    protection_level: str | None = None
    source: str = ""
    ref: str = ""  # event id or another unique reference (keeps equal-looking deaths apart)


def death_of(
    *,
    t: datetime,
    camera: str,
    scientific_name: str | None,
    catalogue: Catalogue | None,
    node: str = "",
    source: str = "",
    ref: str = "",
    chinese_name: str = "",
    english_name: str = "",
) -> Death:
    """A Death with risk group and protection level looked up in the catalogue."""
    sp = catalogue.get(scientific_name) if (catalogue and scientific_name) else None
    return Death(
        t=t,
        camera=camera,
        node=node,
        scientific_name=sp.scientific_name if sp else scientific_name,
        chinese_name=sp.chinese_name if sp else chinese_name,
        english_name=sp.english_name if sp else english_name,
        risk_group=sp.risk_group if sp else None,
        protection_level=sp.protection_level if sp else None,
        source=source,
        ref=ref,
    )


@dataclass(frozen=True, slots=True)
class Cluster:
    """Deaths that together make a mortality cluster; `keys` are all groupings it covers."""

    keys: tuple[str, ...]
    deaths: tuple[Death, ...]

    @property
    def key(self) -> str:
        """The primary grouping (protected:, species:, group: or unidentified)."""
        return self.keys[0]

    @property
    def source(self) -> str:
        """The event source that records which groupings this cluster used up."""
        return (CLUSTER_SOURCE + "|".join(self.keys))[:255]


def death_keys(death: Death, protected_alone: bool) -> list[str]:
    """Groupings a death counts in, most specific first."""
    keys = []
    if death.scientific_name and death.protection_level and protected_alone:
        keys.append(f"protected:{death.scientific_name}")
    if death.scientific_name:
        keys.append(f"species:{death.scientific_name}")
    if death.risk_group:
        keys.append(f"group:{death.risk_group}")
    if not death.scientific_name:
        keys.append("unidentified")
    return keys


def keys_of_source(source: str) -> list[str]:
    """Groupings recorded in a cluster event's source."""
    if not source.startswith(CLUSTER_SOURCE):
        return []
    return [k for k in source[len(CLUSTER_SOURCE) :].split("|") if k]


def find_clusters(
    deaths: Iterable[Death],
    *,
    now: datetime,
    settings: MortalityClusterSettings,
    raised: Mapping[str, datetime],
) -> list[Cluster]:
    """New clusters at `now`; `raised` maps a grouping to the last death already clustered."""
    start = now - timedelta(hours=settings.window_h)
    by_key: dict[str, list[Death]] = defaultdict(list)
    for d in deaths:
        if not start < d.t <= now:
            continue
        for k in death_keys(d, settings.protected_alone):
            last = raised.get(k)
            if last is None or d.t > last:
                by_key[k].append(d)
    order = {"protected": 0, "species": 1, "group": 2, "unidentified": 3}
    out: list[Cluster] = []
    for k in sorted(by_key, key=lambda k: (order[k.split(":")[0]], k)):
        ds = by_key[k]
        need = 1 if k.startswith("protected:") else settings.min_dead
        if len(ds) < need:
            continue
        members = set(ds)
        covering = next((i for i, c in enumerate(out) if members <= set(c.deaths)), None)
        if covering is not None and not k.startswith("protected:"):
            c = out[covering]
            out[covering] = Cluster((*c.keys, k), c.deaths)
            continue
        out.append(Cluster((k,), tuple(sorted(ds, key=lambda d: d.t))))
    return out


def cluster_text(cluster: Cluster, settings: MortalityClusterSettings) -> tuple[str, str]:
    """The Chinese and English sentence of a cluster."""
    first = cluster.deaths[-1]
    kind, _, value = cluster.key.partition(":")
    if kind == "protected":
        return messages.render(
            messages.PROTECTED_DEATH,
            level="一" if first.protection_level == "I" else "二",
            what_zh=first.chinese_name or value,
            what_en=first.english_name or value,
        )
    if kind == "species":
        zh, en = first.chinese_name or value, first.english_name or value
    elif kind == "group":
        zh, en = RISK_GROUPS.get(value, (value, value))
    else:
        zh, en = messages.UNIDENTIFIED_BIRD
    return messages.render(
        messages.MORTALITY_CLUSTER,
        hours=f"{settings.window_h:g}",
        cameras=len({(d.node, d.camera) for d in cluster.deaths}),
        count=len(cluster.deaths),
        what_zh=zh,
        what_en=en,
    )


def cluster_species(cluster: Cluster) -> SpeciesGuess | None:
    """The species of a species (or protected-species) cluster."""
    kind, _, value = cluster.key.partition(":")
    if kind not in ("species", "protected"):
        return None
    return SpeciesGuess(
        scientific_name=value, chinese_name=cluster.deaths[-1].chinese_name, confidence=1.0
    )


@dataclass
class DeathLog:
    """Suspected deaths on this node (all cameras), shared by the motionless and cluster rules."""

    deaths: list[Death] = field(default_factory=list)

    def add(self, death: Death) -> None:
        """Record one death."""
        self.deaths.append(death)

    def prune(self, before: datetime) -> None:
        """Forget deaths at or before `before`."""
        self.deaths = [d for d in self.deaths if d.t > before]


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
    return messages.category_names(Category.BIRD)


class MotionlessBirdRule(Rule):
    """A bird that has not moved for `still_min` minutes: suspected dead or moribund."""

    name = "motionless_bird"

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
            out.append(self._finding(s, c.detection, c.classification, c.first_at, c.static, c))
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
            out.append(self._finding(s, det, cls, since, static, None))
        return out

    def _finding(
        self,
        s: Sighting,
        d: Detection,
        cls: Classification | None,
        since: datetime,
        static: bool,
        c: _Candidate | None,
    ) -> Finding:
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
        self.deaths.add(
            death_of(
                t=s.captured_at,
                camera=s.camera,
                scientific_name=guess.scientific_name if guess else None,
                catalogue=self.catalogue,
                source=s.source,
                ref=f"{s.camera}/{s.source}/{d.x1:.0f},{d.y1:.0f}",
            )
        )
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
        )


def _detection_of(track: Track, detections: list[Detection]) -> tuple[int | None, Detection]:
    """The detection of this frame that is the track's box, or a detection made from the box."""
    for i, d in enumerate(detections):
        if (d.x1, d.y1, d.x2, d.y2) == track.box and d.category is track.category:
            return i, d
    x1, y1, x2, y2 = track.box
    return None, Detection(x1, y1, x2, y2, track.score, -1, track.label, track.category)


class MortalityClusterRule(Rule):
    """Several suspected deaths of one species or risk group, or one protected bird: critical."""

    name = "mortality_cluster"

    def __init__(self, settings: MortalityClusterSettings, deaths: DeathLog) -> None:
        self.settings = settings
        self.deaths = deaths
        self._raised: dict[str, datetime] = {}

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """Clusters among the node's deaths up to this sighting (run after motionless_bird)."""
        now = sighting.captured_at
        window = timedelta(hours=self.settings.window_h)
        self.deaths.prune(now - window)
        self._raised = {k: t for k, t in self._raised.items() if t > now - window}
        out = []
        for c in find_clusters(
            self.deaths.deaths, now=now, settings=self.settings, raised=self._raised
        ):
            last = c.deaths[-1].t
            for k in c.keys:
                self._raised[k] = last
            zh, en = cluster_text(c, self.settings)
            log.warning("mortality cluster %s: %d deaths", c.key, len(c.deaths))
            out.append(
                Finding(
                    kind=EventKind.ANOMALY,
                    category=Category.BIRD,
                    severity=self.settings.severity,
                    count=len(c.deaths),
                    confidence=1.0,
                    rule=self.name,
                    message_zh=zh,
                    message_en=en,
                    started_at=c.deaths[0].t,
                    until=last,
                    source=c.source,
                    species=cluster_species(c),
                    evidence=tuple(d.source for d in c.deaths),
                )
            )
        return out
