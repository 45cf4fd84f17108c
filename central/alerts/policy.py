"""Escalation policies of duty alerting, as configuration: who is told, in which order, how long
each waits, how often the chain repeats (central/alerting.py runs them). No database here: the
config module holds these."""

from __future__ import annotations

from datetime import time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from broker.payloads import Severity


class DutyRole(StrEnum):
    """A place in the escalation chain, in order."""

    DUTY = "duty"  # 值班员
    BACKUP = "backup"  # 备班
    HEAD = "head"  # 站长

    @property
    def label(self) -> str:
        return {"duty": "值班员 duty officer", "backup": "备班 backup", "head": "站长 head"}[
            self.value
        ]


class Step(BaseModel):
    """Notify whoever holds `role` once `after_s` have passed since the alert was first sent."""

    model_config = ConfigDict(extra="forbid")

    role: DutyRole
    after_s: float = Field(ge=0, le=86_400)


class Policy(BaseModel):
    """How one severity escalates."""

    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(min_length=1)
    repeat: int = Field(0, ge=0, le=10, description="run the chain again this many times")
    repeat_after_s: float = Field(1800, gt=0, description="pause before the chain starts again")
    daytime_only: bool = Field(
        False, description="at night, wait for the daytime window (a warning need not wake anyone)"
    )
    group_wait_s: float | None = Field(
        None,
        ge=0,
        le=3600,
        description="this severity's wait for more of the same before the first message "
        "(None: the escalation's group_wait_s)",
    )


def _default_policies() -> dict[Severity, Policy]:
    chain = [
        Step(role=DutyRole.DUTY, after_s=0),
        Step(role=DutyRole.BACKUP, after_s=600),
        Step(role=DutyRole.HEAD, after_s=1200),
    ]
    return {
        # Critical pages at once: a mortality cluster is already a group of deaths, and a dog
        # or an intruder in the reserve will not wait for a batch.
        Severity.CRITICAL: Policy(steps=chain, repeat=2, repeat_after_s=1800, group_wait_s=0),
        Severity.ALERT: Policy(steps=chain, repeat=1, repeat_after_s=3600),
        Severity.WARNING: Policy(steps=[Step(role=DutyRole.DUTY, after_s=0)], daytime_only=True),
    }


class EscalationConfig(BaseModel):
    """Grouping and escalation (defaults documented in the README)."""

    model_config = ConfigDict(extra="forbid")

    group_wait_s: float = Field(30, ge=0, le=3600, description="wait for more of the same first")
    group_interval_s: float = Field(
        1800, gt=0, le=86_400, description="a new event this soon after the last joins the alert"
    )
    policies: dict[Severity, Policy] = Field(default_factory=_default_policies)
    daytime_start: time = time(8, 0)
    daytime_end: time = time(20, 0)

    def group_wait(self, severity: Severity) -> float:
        """Seconds a new alert of this severity waits for more of the same."""
        policy = self.policies.get(severity)
        if policy is not None and policy.group_wait_s is not None:
            return policy.group_wait_s
        return self.group_wait_s
