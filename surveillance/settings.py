"""Rule configuration (the `rules:` section of the node's YAML): defaults follow DOMAIN.md."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from broker.payloads import Category, RuleName, Severity
from models.species import RiskGroup

# The rules a node runs on its cameras, each with a section of RuleSettings below.
CAMERA_RULES: tuple[RuleName, ...] = (
    RuleName.MOTIONLESS_BIRD,
    RuleName.MORTALITY_CLUSTER,
    RuleName.ABNORMAL_COUNT,
    RuleName.NIGHT_INTRUSION,
    RuleName.FREE_ROAMING_DOG,
    RuleName.HIGH_RISK_SPECIES,
    RuleName.CAMERA_HEALTH,
)
ZoneKind = Literal["restricted", "near_poultry", "near_people"]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Unit, Unit]
Polygon = Annotated[list[Point], Field(min_length=3, max_length=64)]

# A typical cooldown: long enough that a person lingering at a camera for an hour raises two
# events, short enough that a second intruder half a night later is a new event.
DEFAULT_COOLDOWN_MIN = 30.0
# DOMAIN.md: migration and wintering seasons (Oct-Apr, Mar-May in Zhejiang) are key periods.
DEFAULT_KEY_MONTHS = (10, 11, 12, 1, 2, 3, 4, 5)
Cooldown = Annotated[
    float,
    Field(ge=0.0, le=24 * 60, description="minutes the same rule on the same camera stays quiet"),
]


BirdGroup = Literal["A", "G", "P", "H", "S", "R", "O"]


def _high_risk_groups() -> list[BirdGroup]:
    return ["A", "G", "P"]  # DOMAIN.md: ducks/geese/swans, gulls, grebes


def _cluster_groups() -> list[RiskGroup]:
    # DOMAIN.md's risk groups; the catch-alls O (other birds), M and X are no group: a sparrow,
    # a magpie and a coot dying on one day say nothing about one disease.
    return ["A", "G", "P", "H", "S", "R"]


def _near_kinds() -> list[ZoneKind]:
    return ["near_poultry", "near_people"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Zone(_Model):
    """A named polygon of one camera's view, in normalised coordinates (0..1, top-left origin)."""

    name: str = Field(min_length=1, max_length=64, description="e.g. 北岸栈道 / boardwalk")
    kind: ZoneKind = Field(description="restricted | near_poultry | near_people")
    polygon: Polygon = Field(description="corners [[x, y], ...] of the zone")


class CameraRuleSettings(_Model):
    """Per-camera rule settings: zones, masks, night-hour override, rules switched off."""

    zones: list[Zone] = Field(default_factory=list, max_length=32, description="named zones")
    masks: list[Polygon] = Field(
        default_factory=list,
        max_length=32,
        description="areas whose detections are ignored (bottom-centre inside), e.g. a road",
    )
    night_start: time | None = Field(None, description="overrides night_intrusion.start")
    night_end: time | None = Field(None, description="overrides night_intrusion.end")
    disabled: list[RuleName] = Field(default_factory=list, description="rules off here")

    @field_validator("disabled")
    @classmethod
    def _camera_rules(cls, value: list[RuleName]) -> list[RuleName]:
        wrong = [r.value for r in value if r not in CAMERA_RULES]
        if wrong:
            raise ValueError(f"not a camera rule: {', '.join(wrong)}")
        return value


class ScheduleSettings(_Model):
    """Key periods (重点时期) of the site."""

    key_months: list[Annotated[int, Field(ge=1, le=12)]] = Field(
        default_factory=lambda: list(DEFAULT_KEY_MONTHS),
        max_length=12,
        description="months of the key period (migration, wintering); default Oct-May",
    )


class MotionlessBirdSettings(_Model):
    """A bird that has not moved for a while: suspected dead or moribund."""

    enabled: bool = True
    severity: Severity = Severity.ALERT
    still_min: float = Field(10.0, gt=0, le=24 * 60, description="minutes without moving")
    min_iou: float = Field(
        0.6, gt=0.0, le=1.0, description="least overlap with the first box (still images)"
    )
    max_gap_min: float = Field(
        30.0, gt=0, le=24 * 60, description="minutes without a sighting before the bird is lost"
    )
    min_frames: int = Field(3, ge=2, le=1000, description="sightings needed (still images)")
    same_bird_iou: float = Field(
        0.3,
        gt=0.0,
        le=1.0,
        description="least overlap with a death already recorded at the camera (within the "
        "cluster window) for a still bird to be that same carcass, not a new death",
    )
    cooldown_min: Cooldown = DEFAULT_COOLDOWN_MIN


class MortalityClusterSettings(_Model):
    """Several dead birds of one species or risk group, or one nationally protected bird."""

    enabled: bool = True
    severity: Severity = Severity.CRITICAL
    min_dead: int = Field(3, ge=2, le=1000, description="dead birds that make a cluster")
    window_h: float = Field(24.0, gt=0, le=24 * 14, description="hours the deaths fall within")
    protected_alone: bool = Field(
        True, description="one dead bird of a protected species (I/II) is a cluster on its own"
    )
    groups: list[RiskGroup] = Field(
        default_factory=_cluster_groups,
        description="risk groups whose deaths add up across species (default A G P H S R)",
    )
    any_bird: bool = Field(
        False,
        description="also count birds of any species together, unidentified ones included",
    )
    update_min_new: int = Field(
        3,
        ge=1,
        le=1000,
        description="new deaths that make a follow-up (续报) of a cluster already raised "
        "(a protected species: every new death)",
    )
    same_view: list[Annotated[list[str], Field(min_length=2, max_length=16)]] = Field(
        default_factory=list,
        max_length=32,
        description="groups of camera ids watching the same ground: a carcass seen by several "
        "counts once (the most any one camera of the group recorded)",
    )
    central_min_nodes: int = Field(
        2,
        ge=1,
        le=64,
        description="central raises only clusters spanning this many nodes (a node sees its own)",
    )


class AbnormalCountSettings(_Model):
    """Daily count (max per image) far from the camera's recent median, up or down."""

    enabled: bool = True
    severity: Severity = Severity.WARNING
    baseline_days: int = Field(7, ge=3, le=90, description="past days of the baseline")
    min_history_days: int = Field(5, ge=2, le=90, description="days of history before firing")
    z_on: float = Field(3.5, gt=0, le=50, description="robust z-score that raises an event")
    z_off: float = Field(2.0, ge=0, le=50, description="z-score below which the alarm re-arms")
    min_delta: int = Field(3, ge=1, le=10_000, description="least absolute change from median")
    categories: list[Category] = Field(
        default_factory=lambda: [Category.BIRD, Category.ANIMAL, Category.DOG],
        description="categories counted (species are counted too when classified)",
    )
    cooldown_min: Cooldown = DEFAULT_COOLDOWN_MIN

    @model_validator(mode="after")
    def _bounds(self) -> AbnormalCountSettings:
        if self.z_off >= self.z_on:
            raise ValueError("z_off must be below z_on (hysteresis)")
        if self.min_history_days > self.baseline_days:
            raise ValueError("min_history_days cannot exceed baseline_days")
        return self


class NightIntrusionSettings(_Model):
    """People or vehicles inside night hours (local time) or inside a restricted zone."""

    enabled: bool = True
    start: time = Field(time(19, 0), description="night starts (local time)")
    end: time = Field(time(6, 0), description="night ends (local time)")
    severity: Severity = Severity.ALERT
    cooldown_min: Cooldown = DEFAULT_COOLDOWN_MIN


class DogSettings(_Model):
    """Free-roaming dogs inside the reserve."""

    enabled: bool = True
    severity: Severity = Severity.ALERT
    cooldown_min: Cooldown = DEFAULT_COOLDOWN_MIN


class HighRiskSpeciesSettings(_Model):
    """An avian-influenza high-risk bird inside a zone near poultry or people."""

    enabled: bool = True
    severity: Severity = Severity.WARNING
    key_severity: Severity = Field(Severity.ALERT, description="severity in the key period")
    groups: list[BirdGroup] = Field(
        default_factory=_high_risk_groups,
        description="risk groups (A ducks/geese/swans, G gulls, P grebes)",
    )
    zone_kinds: list[ZoneKind] = Field(default_factory=_near_kinds, description="zones that count")
    cooldown_min: Cooldown = DEFAULT_COOLDOWN_MIN


class CameraHealthSettings(_Model):
    """Camera failures reported by the live camera health monitor."""

    enabled: bool = True
    severity: Severity = Field(Severity.WARNING, description="no frames, frozen, black")
    moved_severity: Severity = Field(Severity.ALERT, description="view moved (tamper)")
    cooldown_min: Cooldown = DEFAULT_COOLDOWN_MIN


class RuleSettings(_Model):
    """Which rules run and how; per-camera zones, masks and overrides under `cameras`."""

    schedule: ScheduleSettings = ScheduleSettings()
    cameras: dict[str, CameraRuleSettings] = Field(
        default_factory=dict, description="per-camera zones, masks and overrides, by camera id"
    )
    motionless_bird: MotionlessBirdSettings = MotionlessBirdSettings()
    mortality_cluster: MortalityClusterSettings = MortalityClusterSettings()
    abnormal_count: AbnormalCountSettings = AbnormalCountSettings()
    night_intrusion: NightIntrusionSettings = NightIntrusionSettings()
    free_roaming_dog: DogSettings = DogSettings()
    high_risk_species: HighRiskSpeciesSettings = HighRiskSpeciesSettings()
    camera_health: CameraHealthSettings = CameraHealthSettings()

    @field_validator("cameras")
    @classmethod
    def _camera_ids(cls, v: dict[str, CameraRuleSettings]) -> dict[str, CameraRuleSettings]:
        for cid in v:
            if not cid or len(cid) > 64:
                raise ValueError(f"bad camera id {cid!r}")
        return v

    def camera(self, camera: str) -> CameraRuleSettings:
        """Settings of one camera (empty when it has none)."""
        return self.cameras.get(camera) or _EMPTY_CAMERA

    def enabled(self, rule: RuleName | str, camera: str) -> bool:
        """Whether a rule runs on a camera."""
        section = getattr(self, rule, None)
        on = bool(getattr(section, "enabled", True))
        return on and rule not in self.camera(camera).disabled

    def is_key_period(self, month: int) -> bool:
        """Whether a month lies in the key period."""
        return month in self.schedule.key_months


_EMPTY_CAMERA = CameraRuleSettings()
