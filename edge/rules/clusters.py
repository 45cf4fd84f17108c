"""Suspected deaths and the mortality clusters they make (pure; shared by the edge and central).

A death counts in groupings (keys): its protected species, its species (or genus/family when the
classifier could only roll up), its risk group when that group clusters, unidentified birds, and
optionally birds of any species. A cluster is raised on the deaths of one grouping in the window
that no earlier cluster reported; a grouping whose deaths were partly reported already gets a
follow-up (续报) naming the new total instead of a second alarm.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.payloads import MAX_SOURCE, SpeciesGuess
from edge.rules import messages
from edge.rules.geometry import NormBox, box_iou
from edge.rules.settings import MortalityClusterSettings
from edge.rules.state import DeathRow, RuleState
from models.species import RISK_GROUPS, Catalogue

log = logging.getLogger(__name__)

CLUSTER_SOURCE = "mortality_cluster:"  # source prefix of cluster events; the keys follow
PROTECTED = "protected"
# Most specific grouping first: it names the cluster; broader ones covering the same deaths
# are recorded with it.
KIND_ORDER = {PROTECTED: 0, "species": 1, "taxon": 2, "group": 3, "unidentified": 4, "any": 5}
DEFAULT_WINDOW_H = 24.0


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
    rank: str = "species"  # species, or genus/family when the classifier rolled up
    box: NormBox | None = None  # where in the camera's view (edge): the same carcass later on
    last_seen: datetime | None = None  # the carcass's latest sighting (edge)


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
    box: NormBox | None = None,
) -> Death:
    """A Death with risk group and protection level of its species, genus or family."""
    tx = catalogue.taxon(scientific_name) if (catalogue and scientific_name) else None
    return Death(
        t=t,
        camera=camera,
        node=node,
        scientific_name=tx.scientific_name if tx else scientific_name,
        chinese_name=tx.display_zh if tx else chinese_name,
        english_name=tx.english_name if tx else english_name,
        risk_group=tx.risk_group if tx else None,
        protection_level=tx.protection_level if tx else None,
        source=source,
        ref=ref,
        rank=tx.rank if tx else "species",
        box=box,
    )


def same_kind(a: Death, b: Death) -> bool:
    """Whether two deaths may be one bird: same species, genus or risk group, or one unknown.

    Successive bursts of one carcass are classified independently (mallard, then spot-billed
    duck, then only 鸭属): they must not look like different birds.
    """
    if not a.scientific_name or not b.scientific_name:
        return True
    if a.scientific_name.split()[0] == b.scientific_name.split()[0]:
        return True
    return a.risk_group is not None and a.risk_group == b.risk_group


@dataclass(frozen=True, slots=True)
class Cluster:
    """Deaths that together make a mortality cluster; `keys` are all groupings it covers."""

    keys: tuple[str, ...]
    deaths: tuple[Death, ...]  # every death of the primary grouping in the window
    new: tuple[Death, ...] = ()  # the deaths no earlier cluster reported
    follow_up: bool = False  # some deaths were reported before: an update (续报)
    count: int = 0  # distinct dead birds (cameras watching the same ground count once)

    @property
    def key(self) -> str:
        """The primary grouping (protected:, species:, taxon:, group:, unidentified, any)."""
        return self.keys[0]

    @property
    def total(self) -> int:
        """Dead birds in the cluster."""
        return self.count or len(self.deaths)

    @property
    def source(self) -> str:
        """The event source that records which groupings this cluster used up."""
        return (CLUSTER_SOURCE + "|".join(self.keys))[:MAX_SOURCE]


def death_keys(death: Death, settings: MortalityClusterSettings) -> list[str]:
    """Groupings a death counts in under these settings, most specific first."""
    keys = []
    name = death.scientific_name
    if name and death.protection_level and settings.protected_alone:
        keys.append(f"{PROTECTED}:{name}")
    if name:
        keys.append(f"{'species' if death.rank == 'species' else 'taxon'}:{name}")
    if death.risk_group in settings.groups:
        keys.append(f"group:{death.risk_group}")
    if not name:
        keys.append("unidentified")
    if settings.any_bird:
        keys.append("any")
    return keys


def keys_of_source(source: str) -> list[str]:
    """Groupings recorded in a cluster event's source."""
    if not source.startswith(CLUSTER_SOURCE):
        return []
    return [k for k in source[len(CLUSTER_SOURCE) :].split("|") if k]


def distinct_count(deaths: Iterable[Death], same_view: Sequence[Sequence[str]] = ()) -> int:
    """Dead birds among `deaths`: on cameras watching the same ground, the most one recorded.

    Two cameras over one mudflat both record the same two carcasses; summing would say four.
    The most any one camera of the view recorded is a lower bound of the true number.
    """
    view_of = {camera: i for i, group in enumerate(same_view) for camera in group}
    alone = 0
    per_view: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for d in deaths:
        view = view_of.get(d.camera)
        if view is None:
            alone += 1
        else:
            per_view[(d.node, view)][d.camera] += 1
    return alone + sum(max(c.values()) for c in per_view.values())


def find_clusters(
    deaths: Iterable[Death],
    *,
    now: datetime,
    settings: MortalityClusterSettings,
    raised: Mapping[str, datetime],
) -> list[Cluster]:
    """New clusters and follow-ups at `now` (window inclusive at both ends).

    `raised` maps a grouping to the last death already reported in a cluster of it: deaths of
    that grouping up to then are reported. A grouping is raised when at least `min_dead` of its
    deaths are unreported (a protected species: one); when some of its deaths were reported
    already, it is a follow-up, raised when `update_min_new` (protected: one) are unreported.
    A protected-species alarm does not use its bird up for the other groupings.
    """
    start = now - timedelta(hours=settings.window_h)
    live = sorted({d for d in deaths if start <= d.t <= now}, key=lambda d: (d.t, d.ref))
    members: dict[str, list[Death]] = defaultdict(list)
    for d in live:
        for k in death_keys(d, settings):
            members[k].append(d)

    def reported(d: Death, protected: bool) -> bool:
        for k in death_keys(d, settings):
            last = raised.get(k)
            if k.startswith(PROTECTED) == protected and last is not None and d.t <= last:
                return True
        return False

    def count(ds: Iterable[Death]) -> int:
        return distinct_count(ds, settings.same_view)

    out: list[Cluster] = []
    used: set[Death] = set()  # deaths a (non-protected) cluster of this call reports
    for k in sorted(members, key=lambda k: (KIND_ORDER[k.partition(":")[0]], k)):
        protected = k.startswith(PROTECTED)
        ms = members[k]
        fresh = [d for d in ms if not reported(d, protected)]
        follow_up = len(fresh) < len(ms)
        need = 1 if protected else settings.update_min_new if follow_up else settings.min_dead
        if count(fresh) < need:
            continue
        if not protected:
            covering = next((i for i, c in enumerate(out) if set(fresh) <= set(c.deaths)), None)
            if covering is not None:
                c = out[covering]
                out[covering] = dataclasses.replace(c, keys=(*c.keys, k))
                continue
            fresh = [d for d in fresh if d not in used]
            if count(fresh) < need:
                continue
            used.update(fresh)
        out.append(Cluster((k,), tuple(ms), tuple(fresh), follow_up, count(ms)))
    return out


def cluster_text(cluster: Cluster, settings: MortalityClusterSettings) -> tuple[str, str]:
    """The Chinese and English sentence of a cluster or of its follow-up."""
    last = cluster.deaths[-1]
    kind, _, value = cluster.key.partition(":")
    n = cluster.total
    cams_zh, cams_en = messages.cameras(len({(d.node, d.camera) for d in cluster.deaths}))
    so_far = messages.SO_FAR if cluster.follow_up else ("", "")
    fields: dict[str, object] = {
        "hours": f"{settings.window_h:g}",
        "cameras_zh": cams_zh,
        "cameras_en": cams_en,
        "so_far_zh": so_far[0],
        "so_far_en": so_far[1],
        "count": n,
    }
    if kind == PROTECTED:
        level_zh, level_en = messages.LEVELS.get(last.protection_level or "", ("", "?"))
        template = (
            messages.PROTECTED_DEATH
            if n == 1 and not cluster.follow_up
            else messages.PROTECTED_DEATHS
        )
        body = messages.render(
            template,
            level_zh=level_zh,
            level_en=level_en,
            what_zh=last.chinese_name or value,
            what_en=messages.plural_en(last.english_name or value, n),
            **fields,
        )
        is_cluster = n >= settings.min_dead or len(cluster.keys) > 1
    else:
        if kind in ("species", "taxon"):
            zh, en = last.chinese_name or value, last.english_name or value
        elif kind == "group":
            zh, en = RISK_GROUPS.get(value, (value, value))
        elif kind == "unidentified":
            zh, en = messages.UNIDENTIFIED_BIRD
        else:
            zh, en = messages.ANY_BIRD
        body = messages.render(
            messages.DEATHS, what_zh=zh, what_en=messages.plural_en(en, n), **fields
        )
        is_cluster = True
    parts = [body]
    if cluster.follow_up:
        new = distinct_count(cluster.new, settings.same_view)
        parts = [messages.FOLLOW_UP, body, messages.render(messages.NEW_DEATHS, new=new)]
    if is_cluster:
        parts.append(messages.IS_CLUSTER)
    return messages.join(*parts)


def cluster_species(cluster: Cluster) -> SpeciesGuess | None:
    """The species (or genus/family) of a species, taxon or protected-species cluster."""
    kind, _, value = cluster.key.partition(":")
    if kind not in ("species", "taxon", PROTECTED):
        return None
    return SpeciesGuess(
        scientific_name=value[:120],
        chinese_name=cluster.deaths[-1].chinese_name[:60],
        confidence=1.0,
    )


class DeathLog:
    """Suspected deaths on this node (all cameras) and the groupings already reported.

    Shared by the motionless and cluster rules; kept in rules.db when given the RuleState, so a
    restart (a power cut between the second and third dead bird) loses no cluster.
    """

    def __init__(self, state: RuleState | None = None, window_h: float = DEFAULT_WINDOW_H) -> None:
        self.state = state
        self.window = timedelta(hours=window_h)
        self.deaths: list[Death] = []
        self.raised: dict[str, datetime] = {}
        if state is not None:
            self.deaths = [_death(row) for row in state.deaths()]
            self.raised = state.raised_clusters()

    def add(self, death: Death) -> None:
        """Record one death."""
        self.deaths.append(death)
        if self.state is not None:
            self.state.save_death(_row(death), death.last_seen or death.t)

    def refresh(self, death: Death, seen: datetime) -> None:
        """The carcass of `death` was seen again at `seen`: keep it in memory that much longer."""
        newer = dataclasses.replace(death, last_seen=max(seen, death.last_seen or death.t))
        self.deaths = [newer if d is death else d for d in self.deaths]
        if self.state is not None:
            self.state.save_death(_row(newer), newer.last_seen or newer.t)

    def prune(self, before: datetime) -> None:
        """Forget deaths last seen, and groupings last reported, before `before`."""
        deaths = [d for d in self.deaths if (d.last_seen or d.t) >= before]
        raised = {k: t for k, t in self.raised.items() if t >= before}
        if self.state is not None and len(deaths) < len(self.deaths):  # no write for nothing
            self.state.forget_deaths(before)
        if self.state is not None and len(raised) < len(self.raised):
            self.state.forget_raised(before)
        self.deaths, self.raised = deaths, raised

    def mark_raised(self, keys: Iterable[str], last: datetime) -> None:
        """The deaths of these groupings up to `last` are reported in a cluster."""
        for k in keys:
            t = max(last, self.raised.get(k, last))
            self.raised[k] = t
            if self.state is not None:
                self.state.set_raised(k, t)

    def same_carcass(self, death: Death, min_iou: float) -> Death | None:
        """A death already recorded at the same camera and place that may be the same bird."""
        if death.box is None:
            return None
        best, best_iou = None, min_iou
        for d in self.deaths:
            if (d.node, d.camera) != (death.node, death.camera) or d.box is None:
                continue
            if (d.last_seen or d.t) < death.t - self.window or not same_kind(d, death):
                continue
            iou = box_iou(d.box, death.box)
            if iou >= best_iou:
                best, best_iou = d, iou
        return best


def _row(d: Death) -> DeathRow:
    x, y, w, h = d.box if d.box is not None else (None, None, None, None)
    return {
        "ref": d.ref,
        "t": d.t.isoformat(),
        "last_seen": d.last_seen.isoformat() if d.last_seen else None,
        "camera": d.camera,
        "node": d.node,
        "scientific_name": d.scientific_name,
        "chinese_name": d.chinese_name,
        "english_name": d.english_name,
        "risk_group": d.risk_group,
        "protection_level": d.protection_level,
        "rank": d.rank,
        "source": d.source,
        "x": x,
        "y": y,
        "w": w,
        "h": h,
    }


def _death(row: DeathRow) -> Death:
    def text(key: str) -> str:
        return str(row.get(key) or "")

    def opt(key: str) -> str | None:
        return text(key) or None

    x, y, w, h = (row.get(c) for c in "xywh")
    box = None
    if x is not None and y is not None and w is not None and h is not None:
        box = (float(x), float(y), float(w), float(h))
    seen = opt("last_seen")
    return Death(
        t=datetime.fromisoformat(text("t")),
        camera=text("camera"),
        node=text("node"),
        scientific_name=opt("scientific_name"),
        chinese_name=text("chinese_name"),
        english_name=text("english_name"),
        risk_group=opt("risk_group"),
        protection_level=opt("protection_level"),
        source=text("source"),
        ref=text("ref"),
        rank=text("rank") or "species",
        box=box,
        last_seen=datetime.fromisoformat(seen) if seen else None,
    )
