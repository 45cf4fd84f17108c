"""Rules stage: decide what in a sighting is an observation and what is an anomaly."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from broker.payloads import Category, EventKind, Severity
from edge.detect import Detection


@dataclass(frozen=True, slots=True)
class Sighting:
    """What one camera saw in one image (or frame) at its capture time."""

    camera: str
    captured_at: datetime
    detections: list[Detection]
    width: int
    height: int
    source: str
    model: str


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a rule decided to report; the pipeline turns it into an event."""

    kind: EventKind
    category: Category
    severity: Severity
    count: int
    confidence: float
    detections: list[Detection] = field(default_factory=list)
    rule: str | None = None
    message_zh: str = ""
    message_en: str = ""


class Rule(abc.ABC):
    """One surveillance rule with a stable name (used in events, config and reports)."""

    name: ClassVar[str]

    @abc.abstractmethod
    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """Findings for one sighting (usually none)."""
