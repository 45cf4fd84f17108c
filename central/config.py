"""Central configuration: one pydantic model tree loaded once from YAML."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from broker.payloads import Severity
from broker.topics import ID_PATTERN
from central import messages
from central.alerts.policy import EscalationConfig
from central.reports.settings import DeliveryConfig
from models.species import Catalogue, CatalogueError, load_catalogue
from surveillance.settings import MortalityClusterSettings

PASSWORD_ENV = "WILDWATCH_CENTRAL_MQTT_PASSWORD"
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_CUTOFF = "15:00"
MIN_TOKEN_CHARS = 16  # shorter upload tokens are refused: guessable
STAFF_TOKEN_BYTES = 32  # new_staff_token(): 256 random bits, so a plain sha256 is enough
# Keys the SMS back-ends in central/alerts register under. Kept here as plain names so loading the
# config imports no gateway SDK; tests/central/test_config.py keeps it equal to the registry.
SMS_BACKENDS = ("file",)

SiteId = Annotated[str, Field(pattern=ID_PATTERN)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9]{5,20}$")]
HhMm = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class ConfigError(ValueError):
    """The configuration file is missing, not YAML, or does not fit the model."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttConfig(_Section):
    """How central reaches the broker."""

    host: str = Field("127.0.0.1", min_length=1, description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="broker TCP port (8883 with TLS)")
    username: str | None = Field(None, max_length=128, description="broker user name")
    password: SecretStr | None = Field(
        None, description=f"broker password; taken from ${PASSWORD_ENV} when that is set"
    )
    ca_file: Path | None = Field(None, description="CA certificate; setting it turns TLS on")
    client_id: str = Field(
        "wildwatch-central",
        pattern=r"^[A-Za-z0-9_.-]{1,48}$",
        description="MQTT client id (persistent session); workers append -<n>",
    )
    share_group: SiteId | None = Field(
        None, description="shared-subscription group so several workers split the load"
    )
    workers: int = Field(1, ge=1, le=16, description="ingest connections/threads")
    reconnect_max_s: float = Field(
        60.0,
        gt=0,
        le=600,
        description="longest pause between reconnect attempts (longer spares a struggling broker)",
    )

    @model_validator(mode="before")
    @classmethod
    def _password_from_env(cls, data: Any) -> Any:
        secret = os.environ.get(PASSWORD_ENV)
        if secret and isinstance(data, dict):
            return {**data, "password": secret}
        return data

    @model_validator(mode="after")
    def _workers_need_group(self) -> MqttConfig:
        if self.workers > 1 and self.share_group is None:
            raise ValueError("workers > 1 needs share_group, or every worker gets every message")
        return self


class HttpConfig(_Section):
    """Where the API listens."""

    host: str = Field("127.0.0.1", min_length=1, description="bind address")
    port: int = Field(8000, ge=1, le=65535, description="bind port")


class ReportConfig(_Section):
    """The daily report (日报) sent to the provincial bureau."""

    cutoff: HhMm = Field(
        DEFAULT_CUTOFF, description="local cut-off; the window is previous day cut-off → cut-off"
    )
    output_dir: Path | None = Field(None, description="where reports go (default data_dir/reports)")
    station_name: str = Field("", max_length=120, description="monitoring station name (监测站)")
    station_code: str = Field("", max_length=64, description="station code in the national system")
    # Nodes keep events in their outbox while the link is down and central asks again for missing
    # sequence numbers (monitor.gap_grace_s 30 s, then every resend_interval_s 300 s), so events
    # captured just before the cut-off usually arrive seconds to ~5 minutes late; 10 minutes
    # covers one resend round. Longer: fewer late additions, but a later report.
    grace_minutes: int = Field(
        10,
        ge=0,
        le=1440,
        description="a window counts as closed this long after the cut-off; events arriving "
        "later go to the next report's 补报 (late additions) section",
    )
    delivery: DeliveryConfig | None = Field(
        None, description="send each site's report to the bureau by mail and/or HTTP upload"
    )
    pdf_font: Path | None = Field(
        None,
        description="TrueType font (.ttf/.ttc) with Chinese glyphs for the PDF; default: the "
        "first installed of WenQuanYi Micro Hei (fonts-wqy-microhei), Zen Hei, Noto Sans CJK",
    )
    max_catch_up_days: int = Field(
        62,
        ge=1,
        le=366,
        description="catch-up after a long outage produces at most this many days (the most "
        "recent); a clock that jumped years ahead must not fill the disk, older days need --date",
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_sexagesimal(cls, data: Any) -> Any:
        # YAML 1.1 reads an unquoted 15:00 as the base-60 integer 900; turn it back into "15:00".
        if isinstance(data, dict) and isinstance(data.get("cutoff"), int):
            minutes = data["cutoff"]
            return {**data, "cutoff": f"{minutes // 60:02d}:{minutes % 60:02d}"}
        return data

    @property
    def cutoff_time(self) -> time:
        """The cut-off as a time of day."""
        hours, minutes = self.cutoff.split(":")
        return time(int(hours), int(minutes))

    @property
    def grace(self) -> timedelta:
        """How long after the cut-off a window counts as closed."""
        return timedelta(minutes=self.grace_minutes)


class SiteConfig(_Section):
    """One monitoring point."""

    name_zh: str = Field(min_length=1, max_length=120, description="Chinese name (used in SMS)")
    name_en: str = Field("", max_length=120, description="English name")
    station_code: str = Field("", max_length=64, description="national station code")
    latitude: float | None = Field(None, ge=-90, le=90, description="WGS-84 latitude")
    longitude: float | None = Field(None, ge=-180, le=180, description="WGS-84 longitude")

    @model_validator(mode="after")
    def _both_coordinates(self) -> SiteConfig:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude or neither")
        return self


PROVIDER_TYPES = ("aliyun", "tencent", "modem", "file")


def provider_settings(entry: dict[str, Any]) -> tuple[str, BaseModel]:
    """Validate one `alerts.providers` entry with its provider's own settings model (the
    provider module is imported only when configured: its SDK stays unloaded otherwise)."""
    data = dict(entry)
    kind = data.pop("type", None)
    if kind == "file":
        return kind, FileProviderSettings.model_validate(data)
    if kind == "aliyun":
        from central.alerts.aliyun import AliyunSettings

        return kind, AliyunSettings.model_validate(data)
    if kind == "tencent":
        from central.alerts.tencent import TencentSettings

        return kind, TencentSettings.model_validate(data)
    if kind == "modem":
        from central.alerts.modem import ModemSettings

        return kind, ModemSettings.model_validate(data)
    raise ValueError(
        f"未知的短信服务 unknown SMS provider type {kind!r}; known: {', '.join(PROVIDER_TYPES)}"
    )


class FileProviderSettings(BaseModel):
    """The file back-end as a provider (development, demos, a last resort)."""

    model_config = ConfigDict(extra="forbid")

    path: Path


class AlertConfig(_Section):
    """SMS alerts to the duty officers (值班人员)."""

    sms_backend: str = Field("file", pattern=r"^[a-z][a-z0-9_]*$", description="SMS backend key")
    sms_file: Path | None = Field(
        None, description="file backend output (default data_dir/sms.jsonl)"
    )
    duty_phones: list[Phone] = Field(
        default_factory=list, max_length=50, description="who gets SMS"
    )
    min_severity: Severity = Field(Severity.ALERT, description="lowest severity that sends SMS")
    allow_no_duty_phones: bool = Field(
        False,
        description="accept an empty duty_phones (a test bench, a read-only mirror); a station "
        "exists to raise alarms, so an empty list is an error without this explicit opt-out",
    )
    escalation: EscalationConfig | None = Field(
        None,
        description="page the duty roster with grouping, escalation and acknowledgement "
        "(central/alerting.py) instead of texting every duty_phones number per event",
    )
    providers: list[dict[str, Any]] = Field(
        default_factory=list,
        description="SMS providers for escalation, tried in order: {type: aliyun | tencent | "
        "modem | file, ...their settings}",
    )
    daily_cap_per_number: int = Field(
        10, ge=1, le=500, description="messages one number may get per day, all providers"
    )
    callback_token_env: str | None = Field(
        None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="env var holding the secret path part of the providers' receipt and reply "
        "callbacks (/api/sms/<provider>/<secret>/report|reply)",
    )
    _provider_settings: list[tuple[str, BaseModel]] = PrivateAttr(default_factory=list)

    @field_validator("providers")
    @classmethod
    def _providers_known(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for entry in value:
            provider_settings(entry)  # refused at start-up, not at the first alert
        return value

    def provider_settings(self) -> list[tuple[str, BaseModel]]:
        """(type, validated settings) of each configured provider, in order."""
        return [provider_settings(entry) for entry in self.providers]

    @model_validator(mode="after")
    def _backend_and_phones(self) -> AlertConfig:
        if self.sms_backend not in SMS_BACKENDS:
            raise ValueError(
                messages.SMS_BACKEND_UNKNOWN.format(
                    key=self.sms_backend, known=", ".join(SMS_BACKENDS)
                )
            )
        if self.escalation is not None and not self.providers:
            raise ValueError("alerts.escalation needs at least one of alerts.providers")
        if not self.duty_phones and not self.allow_no_duty_phones and self.escalation is None:
            raise ValueError(messages.NO_DUTY_PHONES)
        return self


class MonitorConfig(_Section):
    """Node supervision: offline detection and requests to resend missing events."""

    offline_after_s: float = Field(
        300.0, gt=0, le=86_400, description="no heartbeat this long → node offline (alert once)"
    )
    check_interval_s: float = Field(
        15.0, gt=0, le=3600, description="how often nodes and sequence gaps are checked"
    )
    gap_grace_s: float = Field(
        30.0,
        ge=0,
        le=86_400,
        description="a gap this old is asked for again; shorter spams nodes with requests for "
        "events still in flight through another worker",
    )
    resend_interval_s: float = Field(
        300.0, gt=0, le=86_400, description="pause before asking again for the same gap"
    )
    max_resend_requests: int = Field(
        5, ge=0, le=100, description="after this many requests a gap is left for a human"
    )


class UploaderConfig(_Section):
    """A node allowed to upload evidence, and the environment variable holding its token."""

    site: SiteId
    node: SiteId
    token_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$", description="environment variable with the node's token"
    )


class EvidenceConfig(_Section):
    """Evidence images uploaded by the nodes over HTTP."""

    storage_dir: Path | None = Field(
        None, description="where images go (default data_dir/evidence)"
    )
    max_file_mb: float = Field(20.0, gt=0, le=64, description="largest image accepted")
    max_chunk_mb: float = Field(
        8.0, gt=0, le=64, description="largest request body; bounds memory per upload"
    )
    uploaders: list[UploaderConfig] = Field(
        default_factory=list, max_length=1000, description="nodes allowed to upload"
    )

    @model_validator(mode="after")
    def _unique_nodes_and_tokens(self) -> EvidenceConfig:
        keys = [(u.site, u.node) for u in self.uploaders]
        if len(keys) != len(set(keys)):
            raise ValueError("each node may appear once in evidence.uploaders")
        problems: list[str] = []
        owner_of: dict[str, str] = {}
        for u in self.uploaders:
            node, token = f"{u.site}/{u.node}", os.environ.get(u.token_env, "")
            if not token:
                problems.append(messages.UPLOAD_TOKEN_UNSET.format(node=node, env=u.token_env))
            elif len(token) < MIN_TOKEN_CHARS:
                problems.append(
                    messages.UPLOAD_TOKEN_SHORT.format(
                        node=node, env=u.token_env, min=MIN_TOKEN_CHARS
                    )
                )
            elif token in owner_of:
                problems.append(
                    messages.UPLOAD_TOKEN_SHARED.format(node=node, other=owner_of[token])
                )
            else:
                owner_of[token] = node
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def tokens(self) -> dict[str, tuple[str, str]]:
        """Upload token → (site, node), read from the environment (unset tokens are left out)."""
        found: dict[str, tuple[str, str]] = {}
        for u in self.uploaders:
            token = os.environ.get(u.token_env, "")
            if len(token) >= MIN_TOKEN_CHARS:
                found[token] = (u.site, u.node)
        return found


def token_sha256(token: str) -> str:
    """The hex sha256 of a bearer token, as `staff[].token_sha256` holds it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_staff_token() -> tuple[str, str]:
    """A new random staff token and its sha256: give the token to the person, put the hash in
    the config. One line: python -c "from central.config import new_staff_token as t; print(*t())"
    """
    token = secrets.token_urlsafe(STAFF_TOKEN_BYTES)
    return token, token_sha256(token)


class StaffConfig(_Section):
    """A person who may use the API (read events and evidence, review); the config holds only
    the sha256 of their token, so the file can be backed up and shared without leaking it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(
        min_length=1, max_length=64, description="name recorded on their reviews (审核人)"
    )
    token_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="hex sha256 of the person's bearer token (see new_staff_token())",
    )
    sites: list[SiteId] = Field(
        default_factory=list, description="sites this token may see (empty: every site)"
    )


class CentralConfig(_Section):
    """Everything the central server needs."""

    data_dir: Path = Field(Path("data"), description="working directory for the default files")
    database_url: str = Field("", description="SQLAlchemy URL (default SQLite in data_dir)")
    timezone: str = Field(DEFAULT_TIMEZONE, description="IANA zone for reports and SMS")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    sites: dict[SiteId, SiteConfig] = Field(default_factory=dict, description="site id → site")
    alerts: AlertConfig = Field(default_factory=AlertConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    mortality_cluster: MortalityClusterSettings = Field(
        default_factory=MortalityClusterSettings,
        description="cross-node mortality clusters decided centrally (same rule as the edge)",
    )
    catalogue: Path | None = Field(None, description="station species list CSV (default shipped)")
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    staff: list[StaffConfig] = Field(
        default_factory=list,
        max_length=500,
        description="people allowed to use the API; removing an entry (and restarting) revokes it",
    )
    _catalogue: Catalogue | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _alerts_checked_when_absent(cls, data: Any) -> Any:
        # Validate the absent section like a written one, so "no duty_phones" is reported
        # under 'alerts' instead of escaping from a default factory.
        if isinstance(data, dict) and "alerts" not in data:
            return {**data, "alerts": {}}
        return data

    @field_validator("catalogue")
    @classmethod
    def _catalogue_loads(cls, path: Path | None) -> Path | None:
        if path is not None:
            try:
                load_catalogue(path)  # refused at start-up, not when the first bird arrives
            except CatalogueError as exc:
                raise ValueError(
                    messages.CATALOGUE_UNREADABLE.format(path=path, error=exc)
                ) from exc
        return path

    @model_validator(mode="after")
    def _defaults_and_checks(self) -> CentralConfig:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'central.db'}"
        if self.report.output_dir is None:
            self.report.output_dir = self.data_dir / "reports"
        if self.alerts.sms_file is None:
            self.alerts.sms_file = self.data_dir / "sms.jsonl"
        if self.evidence.storage_dir is None:
            self.evidence.storage_dir = self.data_dir / "evidence"
        self._check_staff()
        return self

    def _check_staff(self) -> None:
        for what, values in (
            ("name", [s.name for s in self.staff]),
            ("token_sha256", [s.token_sha256 for s in self.staff]),
        ):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(
                    messages.STAFF_DUPLICATE.format(what=what, value=", ".join(repeated))
                )
        upload_hashes = {token_sha256(t) for t in self.evidence.tokens()}
        for member in self.staff:
            if member.token_sha256 in upload_hashes:
                raise ValueError(messages.STAFF_TOKEN_IS_UPLOAD_TOKEN.format(name=member.name))
            unknown = [s for s in member.sites if s not in self.sites]
            if unknown:
                raise ValueError(
                    f"staff {member.name}: 未配置的站点 unknown site(s) {', '.join(unknown)}"
                )

    def staff_for_token(self, token: str) -> StaffConfig | None:
        """The staff member whose token this is, or None (every entry compared in constant time)."""
        digest = token_sha256(token).encode()
        found = None
        for member in self.staff:
            if hmac.compare_digest(member.token_sha256.encode(), digest):
                found = member
        return found

    @property
    def species_catalogue(self) -> Catalogue:
        """The station's species catalogue, parsed on first use and shared by every ingest
        worker of this config (the packaged one when none is configured)."""
        if self._catalogue is None:
            self._catalogue = load_catalogue(self.catalogue)
        return self._catalogue

    @property
    def evidence_dir(self) -> Path:
        """Where uploaded evidence images are kept."""
        return self.evidence.storage_dir or self.data_dir / "evidence"

    @property
    def report_dir(self) -> Path:
        """Where reports are written."""
        return self.report.output_dir or self.data_dir / "reports"

    @property
    def sms_file(self) -> Path:
        """Where the file SMS backend writes."""
        return self.alerts.sms_file or self.data_dir / "sms.jsonl"


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key {where!r}")
        else:
            lines.append(f"{where}: {err['msg']}")
    return "; ".join(lines)


def load_config(path: Path | str) -> CentralConfig:
    """Read and validate a YAML config, raising ConfigError that names the offending keys."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    try:
        return CentralConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config {path}: {_describe(exc)}") from exc
