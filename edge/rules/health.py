"""camera_health: a camera state change (no frames, frozen, black, moved) as an anomaly."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from broker.payloads import CameraState, Category, EventKind, RuleName
from edge.rules import Finding, Rule, Sighting
from surveillance import messages
from surveillance.settings import CameraHealthSettings

RULE = RuleName.CAMERA_HEALTH


def camera_health_finding(
    camera: str,
    state: CameraState,
    t: datetime,
    settings: CameraHealthSettings | None = None,
    problem: tuple[str, str] | None = None,
) -> Finding | None:
    """The anomaly for a CameraHealthMonitor state change at `t`; None for ok/unknown.

    `problem` (zh, en) is the cause the camera gave, e.g. a refused password; it is added to
    the message so that the duty officer knows whether to send someone or fix the settings.
    """
    if state not in messages.CAMERA_STATES:
        return None
    cfg = settings or CameraHealthSettings()
    state_zh, state_en = messages.CAMERA_STATES[state]
    zh, en = messages.render(
        messages.CAMERA_HEALTH, camera=camera, state_zh=state_zh, state_en=state_en
    )
    if problem is not None:
        cause_zh, cause_en = messages.render(
            messages.CAMERA_CAUSE, cause_zh=problem[0], cause_en=problem[1]
        )
        zh, en = zh + cause_zh, en + cause_en
    return Finding(
        kind=EventKind.ANOMALY,
        category=Category.CAMERA,
        severity=cfg.moved_severity if state is CameraState.MOVED else cfg.severity,
        count=1,
        confidence=1.0,
        rule=RULE,
        message_zh=zh,
        message_en=en,
        started_at=t,
        source=f"camera_state:{state.value}",
        subject=state.value,  # frozen, then moved: two incidents, each reported
    )


class CameraHealthRule(Rule):
    """Turns a sighting's `camera_state` (set by the live feed) into a camera_health anomaly."""

    name: ClassVar[RuleName] = RULE

    def __init__(self, settings: CameraHealthSettings) -> None:
        self.settings = settings

    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """A finding when the sighting carries a failure state."""
        if sighting.camera_state is None:
            return []
        f = camera_health_finding(
            sighting.camera,
            sighting.camera_state,
            sighting.captured_at,
            self.settings,
            sighting.camera_problem,
        )
        return [] if f is None else [f]
