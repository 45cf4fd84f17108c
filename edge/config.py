"""Node configuration: one pydantic tree loaded from YAML at start-up; typos fail loudly."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from broker.topics import ID_PATTERN
from edge.classify import ClassifierConfig, classifier_settings
from edge.classify.gallery import GallerySettings
from edge.detect import DetectorConfig, detector_settings
from edge.ingest.capture_time import EARLIEST_PLAUSIBLE
from edge.ingest.live import HealthSettings, LiveSettings, LiveSourceError, parse_source
from edge.link import LinkSettings
from edge.motion import MotionSettings
from edge.motion.gate import GateSettings
from edge.storage import StorageSettings
from edge.track.iou_tracker import TrackerSettings
from edge.watchdog import WatchdogSettings
from models.release import ReleaseError, decode_public_key
from surveillance.settings import RuleSettings

PASSWORD_ENV = "WILDWATCH_NODE_MQTT_PASSWORD"
EVIDENCE_TOKEN_ENV = "WILDWATCH_NODE_EVIDENCE_TOKEN"

# Operator-facing config errors, Chinese first.
UNKNOWN_RULE_CAMERA = (
    "{key} 中的相机 {ids} 不在本节点的 cameras 中（已有：{known}）/ "
    "{key} names camera(s) {ids} this node does not have (cameras: {known})"
)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the key and the problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSettings(_Model):
    """How the node reaches the broker."""

    host: str = Field("127.0.0.1", description="broker host name")
    port: int = Field(1883, ge=1, le=65535, description="broker port (8883 for TLS)")
    username: str | None = Field(None, description="this node's broker user")
    ca_file: Path | None = Field(None, description="CA certificate; set to connect with TLS")
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keepalive")

    @property
    def password(self) -> str | None:
        """The broker password comes from the environment, never from the file."""
        return os.environ.get(PASSWORD_ENV)


class EvidenceUploadSettings(_Model):
    """How evidence images reach central: resumable HTTP uploads with this node's token."""

    central_url: str = Field(
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$", description="central API base URL"
    )
    token_env: str = Field(
        EVIDENCE_TOKEN_ENV,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="environment variable holding this node's upload token",
    )
    chunk_kib: int = Field(
        256, ge=1, le=4096, description="bytes per request; smaller resumes sooner on bad links"
    )
    timeout_s: float = Field(30.0, gt=0, le=600, description="one HTTP request")
    retry_s: float = Field(30.0, gt=0, le=3600, description="pause after a failed round")
    max_attempts: int = Field(
        10,
        ge=1,
        le=1000,
        description="tries of a file that cannot be read or that central refuses before it is "
        "given up; the pause doubles from retry_s after each (up to an hour), so the defaults "
        "give an operator about three hours to fix it",
    )

    @property
    def token(self) -> str | None:
        """The token comes from the environment, never from the file."""
        return os.environ.get(self.token_env) or None


class UpdateSettings(_Model):
    """Signed model releases pulled from central (edge/updater.py): what to trust and how often."""

    central_url: str = Field(
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$", description="central API base URL"
    )
    public_key: str = Field(
        description="central's ed25519 release key (base64, `wildwatch models keygen`); a "
        "release whose signature does not verify under it is refused"
    )
    token_env: str = Field(
        EVIDENCE_TOKEN_ENV,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="environment variable holding this node's token (the evidence token)",
    )
    releases_dir: Path | None = Field(
        None, description="where releases are kept (default data_dir/releases)"
    )
    check_s: float | None = Field(
        6 * 3600.0,
        ge=10,
        le=7 * 86400,
        description="look for a new release this often (null: only on central's update command)",
    )
    timeout_s: float = Field(60.0, gt=0, le=600, description="one HTTP request")

    @field_validator("public_key")
    @classmethod
    def _is_ed25519_key(cls, v: str) -> str:
        try:
            decode_public_key(v)
        except ReleaseError as exc:
            raise ValueError(str(exc)) from exc
        return v.strip()

    @property
    def token(self) -> str | None:
        """The token comes from the environment, never from the file."""
        return os.environ.get(self.token_env) or None


class CameraSettings(_Model):
    """One camera of the node; a camera trap delivers into its drop folder."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    name_zh: str = Field("", description="name people read, e.g. 北岸1号相机")
    drop_folder: Path | None = Field(None, description="folder camera-trap images arrive in")
    source: str | None = Field(
        None,
        description="live feed: rtsp:// or http:// URL, USB index ('0'), 'picamera:0', or a "
        "video file played in real time",
    )
    live: LiveSettings = Field(default_factory=LiveSettings, description="feed reconnect/pacing")
    motion: MotionSettings = Field(default_factory=MotionSettings, description="motion detection")
    gate: GateSettings = Field(default_factory=GateSettings, description="when the detector runs")
    tracker: TrackerSettings = Field(default_factory=TrackerSettings, description="object tracks")
    health: HealthSettings = Field(default_factory=HealthSettings, description="camera health")

    @field_validator("source")
    @classmethod
    def _source_parses(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_source(v)
            except LiveSourceError as exc:
                raise ValueError(str(exc)) from exc
        return v


class NodeConfig(_Model):
    """Everything an edge node needs, validated at start-up."""

    site: Annotated[str, Field(pattern=ID_PATTERN, description="site id, e.g. changxing")]
    node: Annotated[str, Field(pattern=ID_PATTERN, description="node id, unique in the site")]
    timezone: str = Field("Asia/Shanghai", description="zone of the camera clocks")
    data_dir: Path = Field(Path("/var/lib/wildwatch/edge"), description="outbox and archives")
    model_store: Path | None = Field(None, description="installed models (default: registry)")
    mqtt: MqttSettings = MqttSettings()
    detector: DetectorConfig = Field(
        default_factory=detector_settings, description="detector back-end and its options"
    )
    classifier: ClassifierConfig = Field(
        default_factory=classifier_settings, description="species classifier back-end"
    )
    gallery: GallerySettings | None = Field(
        None,
        description="reference gallery of confirmed crops searched beside the classifier "
        "(off when absent; an unusable file is logged and the node runs without it)",
    )
    catalogue: Path | None = Field(None, description="station species list CSV (default: shipped)")
    burst_gap_s: float = Field(60.0, gt=0, le=3600, description="frames closer form one burst")
    video_every_s: float = Field(1.0, gt=0, le=60, description="video clips: seconds per sample")
    evidence_limit_mb: float = Field(2000.0, ge=0.1, description="disk kept for evidence images")
    storage: StorageSettings = Field(
        default_factory=StorageSettings,
        description="the node's cap on its data partition and when storage_low is raised",
    )
    evidence_upload: EvidenceUploadSettings | None = Field(
        None, description="upload evidence to central (off when absent)"
    )
    updates: UpdateSettings | None = Field(
        None, description="pull signed model releases from central (off when absent)"
    )
    cameras: list[CameraSettings] = Field(min_length=1)
    rules: RuleSettings = RuleSettings()
    poll_s: float = Field(2.0, gt=0, le=60, description="drop-folder poll interval")
    settle_s: float = Field(2.0, ge=0, le=600, description="a file must not change this long")
    quarantine_grace_s: float = Field(
        600.0,
        ge=0,
        le=86400,
        description="a drop-folder file that does not decode (truncated, corrupt) stays where it "
        "is until unchanged this long, then is quarantined: an upload stalled on a weak link "
        "(4G) resumes within it and is analysed whole; longer delays quarantining broken files",
    )
    capture_time_floor: date = Field(
        EARLIEST_PLAUSIBLE,
        description="EXIF capture times before this day are a reset camera clock (battery "
        "swap) and give way to the file time; set it earlier to scan an older archive",
    )
    heartbeat_s: float = Field(60.0, gt=0, le=3600, description="heartbeat interval")
    link: LinkSettings = Field(
        default_factory=LinkSettings,
        description="the uplink (4G) watch: modem reset, then reboot, after long offline",
    )
    watchdog: WatchdogSettings = Field(
        default_factory=WatchdogSettings, description="when systemd's watchdog restarts the node"
    )

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _unique_cameras(self) -> NodeConfig:
        ids = [c.id for c in self.cameras]
        if len(ids) != len(set(ids)):
            raise ValueError(f"camera ids must be unique, got {ids}")
        _separate_drop_folders(self.cameras)
        if self.evidence_limit_mb >= self.storage.low_at * self.storage.cap_mb:
            raise ValueError(
                f"evidence_limit_mb ({self.evidence_limit_mb:g}) must stay below storage.low_at x "
                f"storage.cap_mb ({self.storage.low_at * self.storage.cap_mb:g}): evidence is "
                "kept, only archived originals are pruned to stay under the cap"
            )
        _known_rule_cameras(self.rules, ids)
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The node's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def outbox_path(self) -> Path:
        """Where the durable outbox lives."""
        return self.data_dir / "outbox.db"

    @property
    def releases_dir(self) -> Path:
        """Where signed model releases are kept (`current` and `previous` point into it)."""
        if self.updates is not None and self.updates.releases_dir is not None:
            return self.updates.releases_dir
        return self.data_dir / "releases"


def _separate_drop_folders(cameras: list[CameraSettings]) -> None:
    """Each camera needs a drop folder of its own: a folder is watched recursively, so the
    outer of two nested folders would take the inner camera's pictures as its own."""
    folders = [(c.id, c.drop_folder.expanduser().resolve()) for c in cameras if c.drop_folder]
    for i, (id_a, a) in enumerate(folders):
        for id_b, b in folders[i + 1 :]:
            if a == b:
                raise ValueError(f"cameras {id_a!r} and {id_b!r} share the drop folder {a}")
            if a in b.parents or b in a.parents:
                (outer_id, outer), (inner_id, inner) = sorted(
                    [(id_a, a), (id_b, b)], key=lambda f: len(f[1].parts)
                )
                raise ValueError(
                    f"drop folder {inner} of camera {inner_id!r} is inside drop folder {outer} of"
                    f" camera {outer_id!r}; give each camera a folder of its own"
                )


def _known_rule_cameras(rules: RuleSettings, ids: list[str]) -> None:
    """Every camera the rules name (per-camera settings, same_view groups) is one of the node's:
    a misspelt id would otherwise be ignored without a word."""
    named = {"rules.cameras": list(rules.cameras)}
    for i, group in enumerate(rules.mortality_cluster.same_view):
        named[f"rules.mortality_cluster.same_view[{i}]"] = group
    for key, cameras in named.items():
        unknown = sorted(set(cameras) - set(ids))
        if unknown:
            # a custom error, not ValueError: the message then starts in Chinese, without
            # pydantic's "Value error, " in front
            raise PydanticCustomError(
                "unknown_camera",
                UNKNOWN_RULE_CAMERA,
                {"key": key, "ids": ", ".join(map(repr, unknown)), "known": ", ".join(ids)},
            )


def describe(exc: ValidationError) -> str:
    """A validation error as lines of `key.path: problem`, naming unknown keys."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = "unknown key (not allowed)" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any, origin: str = "<config>") -> NodeConfig:
    """Validate a mapping as a node configuration."""
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid node configuration {origin}:\n{describe(exc)}") from exc


def load_config(path: Path) -> NodeConfig:
    """Load and validate a node YAML file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return parse_config(data if data is not None else {}, str(path))
