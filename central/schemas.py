"""API request/response schemas, separate from the ORM models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SpeciesPublic(BaseModel):
    """Species suggestion of an event."""

    scientific_name: str
    chinese_name: str | None = None
    confidence: float | None = None


class EventBase(BaseModel):
    """Fields every event view carries."""

    event_id: str = Field(description="unique id made at the edge")
    site: str
    node: str
    camera: str
    kind: str = Field(description="anomaly | observation")
    category: str
    rule: str | None = None
    severity: str
    count: int
    confidence: float
    captured_at: datetime
    captured_until: datetime | None = None


class EvidencePublic(BaseModel):
    """One evidence image of an event; fetch it at /api/evidence/{event_id}/{name}."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    sha256: str
    size: int
    received_at: datetime


class UploadStatusPublic(BaseModel):
    """How much of an evidence upload central holds."""

    received: int = Field(description="bytes held (the whole size once complete)")
    complete: bool = Field(description="the file passed its sha256 check and is stored")


class EventPublic(EventBase):
    """An event as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    seq: int
    species_scientific: str | None = None
    species_chinese: str | None = None
    species_confidence: float | None = None
    created_at: datetime
    received_at: datetime
    message_zh: str
    message_en: str
    source: str
    model: str
    boxes: list[dict[str, Any]]
    review_status: str
    reviewed_at: datetime | None = None
    reviewer: str | None = None
    review_note: str | None = None
    evidence: list[EvidencePublic] = Field(default_factory=list)


class ReviewCreate(BaseModel):
    """A person's decision on an event: confirmed or dismissed (dismissed leaves the reports)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["confirmed", "dismissed"]
    note: str = Field("", max_length=1000, description="why, in the reviewer's words")
    reviewer: str = Field(min_length=1, max_length=64, description="who decided")


class BackgroundCreate(BaseModel):
    """A reviewer marks one box of an event as scenery (stump, decoy) to be masked."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    box_index: int = Field(0, ge=0, le=199, description="which box of the event")
    reviewer: str = Field(min_length=1, max_length=64, description="who decided")
    note: str = Field("", max_length=1000, description="why")


class EventsPublic(BaseModel):
    """A page of events and the total number matching the filters."""

    data: list[EventPublic]
    count: int


class HealthPublic(BaseModel):
    """Liveness and database reachability."""

    status: str
    database: str
    time: datetime
