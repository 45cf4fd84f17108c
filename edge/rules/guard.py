"""What every rule shares: masks and background boxes, per-camera switches, cooldown.

The cooldown is per incident: rule, camera and the finding's `subject` (a camera state, a count
key, one dead bird). Repeats of one incident are held back and counted into its next event; a
different incident on the same camera is reported at once.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

from broker.payloads import EventKind
from edge.rules import Finding, Rule, Sighting
from edge.rules.state import RuleState
from surveillance import messages
from surveillance.geometry import box_inside, box_iou
from surveillance.settings import RuleSettings

log = logging.getLogger(__name__)

# A detection overlapping a box marked as background this much is the background object
# (detector boxes of a stump jitter by a few pixels between frames).
BACKGROUND_IOU = 0.5


def prepare(sighting: Sighting, settings: RuleSettings, state: RuleState) -> Sighting:
    """The sighting without detections in the camera's masks or on marked background boxes."""
    masks = settings.camera(sighting.camera).masks
    background = state.background(sighting.camera)
    if not masks and not background:
        return sighting
    keep: list[int] = []
    for i, d in enumerate(sighting.detections):
        box = d.normalised(sighting.width, sighting.height)
        if any(box_inside(box, m) for m in masks):
            continue
        if any(box_iou(box, b) >= BACKGROUND_IOU for b in background):
            continue
        keep.append(i)
    if len(keep) == len(sighting.detections):
        return sighting
    remap = {old: new for new, old in enumerate(keep)}
    return dataclasses.replace(
        sighting,
        detections=[sighting.detections[i] for i in keep],
        species={remap[i]: c for i, c in sighting.species.items() if i in remap},
    )


class Guarded(Rule):
    """A rule behind masks and background, switched per camera, held back by a cooldown."""

    def __init__(
        self, rule: Rule, settings: RuleSettings, state: RuleState, cooldown_min: float = 0.0
    ) -> None:
        self.rule = rule
        self.settings = settings
        self.state = state
        self.cooldown = timedelta(minutes=cooldown_min)
        self._last: dict[tuple[str, str], datetime] = {}
        self._held: dict[tuple[str, str], int] = {}

    @property
    def name(self) -> str:  # type: ignore[override]
        """The wrapped rule's name."""
        return self.rule.name

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """The wrapped rule's findings, anomalies within the cooldown held back and counted."""
        if not self.settings.enabled(self.rule.name, sighting.camera):
            return []
        out = []
        for f in self.rule.evaluate(prepare(sighting, self.settings, self.state)):
            if f.kind is EventKind.ANOMALY:
                kept = self._pass(sighting.camera, sighting.captured_at, f)
                if kept is None:
                    continue
                f = kept
            out.append(f)
        return out

    def _pass(self, camera: str, t: datetime, f: Finding) -> Finding | None:
        incident = (camera, f.subject)
        last = self._last.get(incident)
        if last is not None and abs(t - last) < self.cooldown:
            self._held[incident] = self._held.get(incident, 0) + 1
            log.debug("%s on %s (%s) held back by the cooldown", self.rule.name, camera, f.subject)
            return None
        self._last[incident] = t
        held = self._held.pop(incident, 0)
        if not held:
            return f
        zh, en = messages.render(messages.AGGREGATED, n=held)
        return dataclasses.replace(
            f, aggregated=held, message_zh=f.message_zh + zh, message_en=f.message_en + en
        )
