"""The node's memory of suspected deaths and of the clusters raised on them (rules.db).

The cluster logic itself is pure and shared with central: surveillance/clusters.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta

from edge.rules.state import DeathRow, RuleState
from surveillance.clusters import DEFAULT_WINDOW_H, Death, same_kind
from surveillance.geometry import box_iou


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
