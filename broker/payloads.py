"""Versioned pydantic payload models of every message on the wire.

A payload change that an old reader cannot ignore bumps SCHEMA_VERSION; readers reject versions
they do not know (the message is dead-lettered centrally with the reason, never dropped).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from broker.topics import ID_PATTERN

SCHEMA_VERSION: Final = 1

# Bounds that keep one hostile payload from exhausting memory or the database.
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BOXES = 200
MAX_TEXT = 500
MAX_SOURCE = 255  # a media path or stream name (events.source is VARCHAR(255))
MAX_EVIDENCE = 8  # the annotated frame and up to seven crops per event
EVIDENCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"  # a plain file name, no path
RELEASE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$"  # a signed model release's version
# Counters and sequence numbers stay well inside a signed 64-bit column (BIGINT, SQLite INTEGER).
MAX_SEQ = 2**62
# Wire times must be storable (year 1 at +08:00 is before datetime.min in UTC) and plausible.
# The lower bound is the Unix epoch, not 2000: a Raspberry Pi without network time boots in 1970
# and camera traps with a reset clock stamp 1980 or 2000, and such an event is still better
# stored and reviewed than refused.
WIRE_TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
WIRE_TIME_MAX = datetime(2100, 1, 1, tzinfo=UTC)

Slug = Annotated[str, Field(pattern=ID_PATTERN, description="site/node id (lower-case slug)")]
CameraId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
# Added without a schema_version bump, like `evidence`: absent (None) is not sent at all, so a
# node without a signed release sends what older readers know; central is upgraded first.
ReleaseVersion = Annotated[str, Field(pattern=RELEASE_PATTERN)]


def _storable_time(value: datetime) -> datetime:
    if not WIRE_TIME_MIN <= value < WIRE_TIME_MAX:
        raise ValueError(
            f"time must be from {WIRE_TIME_MIN.year} to {WIRE_TIME_MAX.year - 1} (UTC)"
        )
    return value


WireTime = Annotated[AwareDatetime, AfterValidator(_storable_time)]


class _Strict(BaseModel):
    # allow_inf_nan=False: Python's JSON decoder turns 1e999 and NaN into floats no column takes.
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False
    )


class Severity(StrEnum):
    """How urgent an event is; `alert` and `critical` page the duty officer."""

    INFO = "info"
    WARNING = "warning"
    ALERT = "alert"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order for comparisons (info < warning < alert < critical)."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ALERT: 2, Severity.CRITICAL: 3}


class RuleName(StrEnum):
    """The rules that raise anomalies, by the name events, configs and reports use.

    A new rule is added here first (an older reader dead-letters the unknown name with the
    reason; see SCHEMA_VERSION). Names fit events.rule (VARCHAR(48)).
    """

    MOTIONLESS_BIRD = "motionless_bird"
    MORTALITY_CLUSTER = "mortality_cluster"
    ABNORMAL_COUNT = "abnormal_count"
    NIGHT_INTRUSION = "night_intrusion"
    FREE_ROAMING_DOG = "free_roaming_dog"
    HIGH_RISK_SPECIES = "high_risk_species"
    CAMERA_HEALTH = "camera_health"  # also central's node-offline alert
    STORAGE_LOW = "storage_low"  # the node's evidence disk, not a camera rule
    STATIC_OBJECT = "static_object"  # an observation for review: a "bird" that never moved


class EventKind(StrEnum):
    """An anomaly needs attention; an observation is a record of what was seen."""

    ANOMALY = "anomaly"
    OBSERVATION = "observation"


class Category(StrEnum):
    """Detection categories as camera-trap tools use them (bird and dog are kinds of animal)."""

    ANIMAL = "animal"
    BIRD = "bird"
    DOG = "dog"
    PERSON = "person"
    VEHICLE = "vehicle"
    CAMERA = "camera"  # camera health events, no detection


class Box(_Strict):
    """One detection box, normalised [x, y, w, h] with the top-left corner as origin."""

    x: Probability
    y: Probability
    w: Probability
    h: Probability
    category: Category
    label: Annotated[str, Field(max_length=64)] = Field(description="model class name, e.g. 'bird'")
    confidence: Probability


class SpeciesGuess(_Strict):
    """A species suggestion with Chinese and Latin names."""

    scientific_name: Annotated[str, Field(max_length=120)]
    chinese_name: Annotated[str, Field(max_length=60)] = ""
    confidence: Probability


# What a node's evidence images are (edge/evidence.py writes them; central cuts thumbnails and
# checks gallery crops against them): the frame scaled down to at most this many pixels on its
# long side, and one crop per detection, its box plus this share of the box on every side.
EVIDENCE_MAX_SIDE = 1920
EVIDENCE_CROP_MARGIN = 0.15


class EvidenceRef(_Strict):
    """One evidence image of an event, uploaded to central over HTTP (not sent over MQTT)."""

    name: Annotated[str, Field(pattern=EVIDENCE_NAME_PATTERN)] = Field(
        description="file name, unique within the event"
    )
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = Field(description="hex digest")
    size: int = Field(ge=1, le=64 * 1024 * 1024, description="bytes")


class EventPayload(_Strict):
    """An anomaly or observation seen by one camera of one node."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: uuid.UUID = Field(description="globally unique, made at the edge")
    seq: int = Field(ge=1, le=MAX_SEQ, description="per-node monotonic sequence number")
    site: Slug
    node: Slug
    camera: CameraId
    kind: EventKind
    category: Category
    captured_at: WireTime = Field(description="capture time of the media (start)")
    captured_until: WireTime | None = Field(None, description="end of the capture window")
    created_at: WireTime
    rule: RuleName | None = Field(None, description="the rule that raised an anomaly")
    severity: Severity = Severity.INFO
    count: int = Field(1, ge=0, le=100_000)
    confidence: Probability
    species: SpeciesGuess | None = None
    boxes: list[Box] = Field(default_factory=list, max_length=MAX_BOXES)
    message_zh: Text = ""
    message_en: Text = ""
    source: Annotated[str, Field(max_length=MAX_SOURCE)] = Field(
        "", description="media file or stream"
    )
    model: Annotated[str, Field(max_length=64)] = ""
    release: ReleaseVersion | None = Field(None, description="signed model release in use")
    evidence: list[EvidenceRef] = Field(
        default_factory=list, max_length=MAX_EVIDENCE, description="images uploaded separately"
    )

    @model_validator(mode="after")
    def _consistent(self) -> EventPayload:
        if self.kind is EventKind.ANOMALY and self.rule is None:
            raise ValueError("an anomaly must name the rule that raised it")
        if self.captured_until is not None and self.captured_until < self.captured_at:
            raise ValueError("captured_until is before captured_at")
        names = [ref.name for ref in self.evidence]
        if len(names) != len(set(names)):
            raise ValueError("evidence names must be unique within an event")
        return self


class CameraState(StrEnum):
    """Health of one camera as the node sees it."""

    OK = "ok"
    NO_FRAMES = "no_frames"
    FROZEN = "frozen"
    BLACK = "black"
    MOVED = "moved"
    UNKNOWN = "unknown"


class LinkHealth(_Strict):
    """The node's uplink (4G) as its link watch sees it: offline time and what it did about it."""

    offline_s: float = Field(0.0, ge=0, description="current offline stretch (0: connected)")
    last_outage_s: float | None = Field(
        None, ge=0, description="how long the latest outage since the node started lasted"
    )
    modem_resets: int = Field(0, ge=0, description="modem resets the link watch ran, ever")
    reboots: int = Field(0, ge=0, description="reboots the link watch asked for, ever")
    last_action: Text | None = Field(None, description="the last step taken and its outcome")
    last_action_at: WireTime | None = None


class HeartbeatPayload(_Strict):
    """Periodic health of a node."""

    schema_version: Literal[1] = SCHEMA_VERSION
    site: Slug
    node: Slug
    sent_at: WireTime
    uptime_s: float = Field(ge=0)
    load_1m: float | None = Field(None, ge=0)
    cpu_temp_c: float | None = Field(None, ge=-50, le=150)
    disk_free_mb: float | None = Field(None, ge=0)
    outbox_depth: int = Field(ge=0, le=MAX_SEQ)
    last_seq: int = Field(
        0, ge=0, le=MAX_SEQ, description="highest sequence number the node has made"
    )
    storage_near_limit: bool = Field(
        False,
        description="storage_low: evidence near its limit, data that cannot be pruned near the "
        "node's cap, or the data partition nearly full",
    )
    cameras: dict[Annotated[str, Field(max_length=64)], CameraState] = Field(
        default_factory=dict, max_length=64
    )
    software_version: Annotated[str, Field(max_length=32)]
    models: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=80)]] = (
        Field(default_factory=dict, max_length=16)
    )
    release: ReleaseVersion | None = Field(None, description="signed model release in use")
    release_error: Text | None = Field(
        None, description="why the last model release was refused or rolled back"
    )
    link: LinkHealth | None = Field(None, description="uplink state and recovery steps taken")
    clock_offset_ms: float | None = Field(
        None, description="system clock minus its time source (chrony), when known"
    )
    storage_used_mb: float | None = Field(
        None, ge=0, description="what WildWatch keeps on its data partition"
    )
    storage_cap_mb: float | None = Field(None, ge=0, description="the most it may keep there")


class NodeState(StrEnum):
    """Retained presence of a node."""

    ONLINE = "online"
    OFFLINE = "offline"


class StatusPayload(_Strict):
    """Retained online/offline status; the offline form is the node's MQTT last will."""

    schema_version: Literal[1] = SCHEMA_VERSION
    site: Slug
    node: Slug
    state: NodeState
    at: WireTime | None = Field(None, description="absent in the last will (set at connect)")


class CommandName(StrEnum):
    """What central can ask a node to do."""

    RESEND = "resend"
    BACKGROUND = "background"
    UPDATE = "update"  # look for a new signed model release now


class CommandPayload(_Strict):
    """A central → node command.

    `resend` asks for the events numbered from_seq..to_seq again; `background` tells the node
    that a person judged the object in `box` of `camera` to be scenery (a stump, a decoy), so
    the rules mask it from then on; `update` asks it to fetch the latest model release now.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    site: Slug
    node: Slug
    command: CommandName
    from_seq: int | None = Field(None, ge=1, le=MAX_SEQ, description="resend: first number")
    to_seq: int | None = Field(None, ge=1, le=MAX_SEQ, description="resend: last (inclusive)")
    camera: CameraId | None = Field(None, description="background: the camera")
    box: Box | None = Field(None, description="background: the object to mask")
    sent_at: WireTime | None = None

    @model_validator(mode="after")
    def _fields_of_command(self) -> CommandPayload:
        if self.command is CommandName.RESEND:
            if self.from_seq is None or self.to_seq is None:
                raise ValueError("resend needs from_seq and to_seq")
            if self.to_seq < self.from_seq:
                raise ValueError("to_seq is before from_seq")
        if self.command is CommandName.BACKGROUND and (self.camera is None or self.box is None):
            raise ValueError("background needs camera and box")
        return self


def utc_now() -> datetime:
    """Aware current time in UTC (wire timestamps are always aware)."""
    return datetime.now(UTC)
