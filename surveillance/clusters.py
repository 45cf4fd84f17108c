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
from models.species import RISK_GROUPS, Catalogue
from surveillance import messages
from surveillance.geometry import NormBox
from surveillance.settings import MortalityClusterSettings

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
