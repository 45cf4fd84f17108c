"""Rules stage: decide what in a sighting is an observation and what is an anomaly."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from broker.payloads import CameraState, Category, EventKind, RuleName, Severity, SpeciesGuess
from edge.classify import Classification
from edge.detect import Detection
from edge.track import Track


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
    # Classifier result per index into `detections` (birds only; filled by the classifier).
    species: Mapping[int, Classification] = field(default_factory=dict)
    # Live feeds: the tracker's tracks after this frame (camera-trap stills have none).
    tracks: tuple[Track, ...] = ()
    # Tracker clock (seconds) of this frame, for Track.stationary_s; None for stills.
    track_t: float | None = None
    # Live feeds: a camera health state change reported with this frame.
    camera_state: CameraState | None = None
    # Why a network camera gives no frames, (zh, en), when the camera said so (wrong password...).
    camera_problem: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a rule decided to report; the pipeline turns it into an event."""

    kind: EventKind
    category: Category
    severity: Severity
    count: int
    confidence: float
    detections: list[Detection] = field(default_factory=list)
    rule: RuleName | None = None
    message_zh: str = ""
    message_en: str = ""
    started_at: datetime | None = None  # start of the capture window (default: the sighting's)
    until: datetime | None = None  # end of the capture window
    source: str | None = None  # overrides the sighting's source (e.g. a cluster key)
    species: SpeciesGuess | None = None
    evidence: tuple[str, ...] = ()  # media files behind the finding (start, end)
    aggregated: int = 0  # findings of the same incident held back by the cooldown
    # What the incident is about within its rule and camera (a camera state, a count key, one
    # dead bird): the cooldown holds back repeats of one incident, never a different one.
    subject: str = ""


class Rule(abc.ABC):
    """One surveillance rule with a stable name (used in events, config and reports)."""

    name: ClassVar[str]

    @abc.abstractmethod
    def evaluate(self, sighting: Sighting) -> list[Finding]:
        """Findings for one sighting (usually none)."""
