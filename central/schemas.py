"""API request/response schemas, separate from the ORM models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from broker.payloads import WIRE_TIME_MAX, WIRE_TIME_MIN
from central import messages

# Times a query may name: the times an event may carry on the wire, so every stored event can be
# found by time; safely inside the range datetime can shift between zones (year 1 or 9999 at an
# extreme offset overflowed into a 500).
EARLIEST_TIME = WIRE_TIME_MIN
LATEST_TIME = WIRE_TIME_MAX


def _query_time(value: datetime) -> datetime:
    """Refuse naive times (no one should guess a zone) and times outside the wire's 1970..2100."""
    if value.utcoffset() is None:
        raise PydanticCustomError("naive_time", messages.NAIVE_TIME)
    if not EARLIEST_TIME <= value <= LATEST_TIME:
        raise PydanticCustomError(
            "time_out_of_range",
            messages.TIME_OUT_OF_RANGE.format(
                earliest=f"{EARLIEST_TIME:%Y-%m-%d}", latest=f"{LATEST_TIME:%Y-%m-%d}"
            ),
        )
    return value


QueryTime = Annotated[datetime, AfterValidator(_query_time)]


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


class ReleaseLatestPublic(BaseModel):
    """The model release nodes should run (fetch its files under /api/releases/{version}/)."""

    version: str = Field(description="release version")


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
    confirmed_species: str | None = Field(None, description="species named on confirming")
    confirmed_box: int | None = Field(None, description="the box it names (null: the first)")
    evidence: list[EvidencePublic] = Field(default_factory=list)


class ReviewCreate(BaseModel):
    """A person's decision on an event: confirmed or dismissed (dismissed leaves the reports).
    Who decided is the authenticated staff member, never a field of the request."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["confirmed", "dismissed"]
    note: str = Field("", max_length=1000, description="why, in the reviewer's words")
    species: str | None = Field(
        None,
        min_length=1,
        max_length=120,
        description="on confirming: the species it really is (scientific name from the "
        "station's catalogue); absent: the node's suggestion stands",
    )
    box_index: int | None = Field(
        None,
        ge=0,
        le=199,
        description="which box of the event `species` is (default: the first); only with species",
    )


class ReviewPublic(BaseModel):
    """One entry of an event's review history."""

    model_config = ConfigDict(from_attributes=True)

    decision: str = Field(description="confirmed | dismissed")
    action: str = Field(description="review | background (a box marked as scenery)")
    reviewer: str = Field(description="the staff member whose token made the request")
    note: str
    reviewed_at: datetime
    species: str | None = Field(None, description="species named on confirming")
    box_index: int | None = Field(None, description="the box that species is")


class ReviewsPublic(BaseModel):
    """Every decision on one event, oldest first; the event itself shows the latest."""

    event_id: str
    data: list[ReviewPublic]
    count: int


class BackgroundCreate(BaseModel):
    """A reviewer marks one box of an event as scenery (stump, decoy) to be masked."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    box_index: int = Field(0, ge=0, le=199, description="which box of the event")
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


class ValidationProblem(BaseModel):
    """A refused request (422): a summary for people, Chinese first, and the errors for programs."""

    detail: str = Field(description="请求参数有误 / invalid request: <where>: <problem>; …")
    errors: list[dict[str, Any]] = Field(
        description="each problem as FastAPI reports it: loc, msg, type (and input, ctx)"
    )
