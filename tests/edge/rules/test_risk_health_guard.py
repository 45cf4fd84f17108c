"""high_risk_species, camera_health, cooldown/aggregation, masks and per-camera switches."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from broker.payloads import CameraState, Category, Severity
from edge.config import ConfigError, parse_config
from edge.rules.basic import FreeRoamingDogRule
from edge.rules.guard import Guarded
from edge.rules.health import camera_health_finding
from edge.rules.risk import HighRiskSpeciesRule
from edge.rules.settings import AbnormalCountSettings, RuleSettings
from edge.rules.state import RuleState
from models.species import load_catalogue
from tests.edge.rules.factory import SH, T0, classified, det, sighting

POULTRY = {
    "name": "养鸭场",
    "kind": "near_poultry",
    "polygon": [[0, 0], [1, 0], [1, 0.5], [0, 0.5]],
}


def test_high_risk_bird_near_poultry() -> None:
    settings = RuleSettings.model_validate({"cameras": {"cam1": {"zones": [POULTRY]}}})
    rule = HighRiskSpeciesRule(settings, load_catalogue())
    mallard = {0: classified("Anas platyrhynchos", "绿头鸭", "Mallard")}
    (f,) = rule.evaluate(sighting(det(Category.BIRD, y=100), species=mallard))  # November: key
    assert (f.rule, f.severity, f.count) == ("high_risk_species", Severity.ALERT, 1)
    assert f.message_zh == "cam1发现1只高风险物种绿头鸭（雁鸭类）进入“养鸭场”（靠近家禽）"
    july = datetime(2026, 7, 1, 9, tzinfo=SH)
    (f,) = rule.evaluate(sighting(det(Category.BIRD, y=100), species=mallard, at=july))
    assert f.severity is Severity.WARNING
    assert rule.evaluate(sighting(det(Category.BIRD, y=700), species=mallard)) == []  # outside
    egret = {0: classified("Egretta garzetta", "白鹭", "Little Egret")}
    assert rule.evaluate(sighting(det(Category.BIRD, y=100), species=egret)) == []  # group H
    assert rule.evaluate(sighting(det(Category.BIRD, y=100))) == []  # no species


def test_camera_health_finding() -> None:
    f = camera_health_finding("cam1", CameraState.FROZEN, T0)
    assert f is not None and (f.rule, f.category, f.severity) == (
        "camera_health",
        Category.CAMERA,
        Severity.WARNING,
    )
    assert f.message_zh == "cam1摄像机画面冻结，请尽快检修"
    moved = camera_health_finding("cam1", CameraState.MOVED, T0)
    assert moved is not None and moved.severity is Severity.ALERT
    assert camera_health_finding("cam1", CameraState.OK, T0) is None


def test_cooldown_aggregates_into_the_next_event() -> None:
    rule = Guarded(FreeRoamingDogRule(), RuleSettings(), RuleState(), cooldown_min=30)
    out = []
    for m in range(0, 40, 2):
        out += rule.evaluate(sighting(det(Category.DOG), minutes=m))
    assert len(out) == 2
    assert out[0].aggregated == 0 and out[1].aggregated == 14
    assert out[1].message_zh.endswith("（冷却期内另有14次同类发现）")
    other = rule.evaluate(sighting(det(Category.DOG), minutes=41, camera="cam2"))
    assert len(other) == 1  # per camera


def test_masks_and_disabled_rules() -> None:
    settings = RuleSettings.model_validate(
        {
            "cameras": {
                "cam1": {"masks": [[[0, 0], [1, 0], [1, 0.3], [0, 0.3]]]},
                "cam2": {"disabled": ["free_roaming_dog"]},
            }
        }
    )
    rule = Guarded(FreeRoamingDogRule(), settings, RuleState())
    assert rule.evaluate(sighting(det(Category.DOG, y=100))) == []  # on the road mask
    assert len(rule.evaluate(sighting(det(Category.DOG, y=600), minutes=1))) == 1
    assert rule.evaluate(sighting(det(Category.DOG), camera="cam2")) == []


def test_settings_refuse_typos_and_bad_bounds() -> None:
    with pytest.raises(ValidationError):
        RuleSettings.model_validate({"motionless_bird": {"still_minutes": 5}})
    with pytest.raises(ValidationError):
        AbnormalCountSettings(z_on=2, z_off=3)
    with pytest.raises(ConfigError, match="unknown camera"):
        parse_config(
            {"site": "cx", "node": "n1", "cameras": [{"id": "a"}], "rules": {"cameras": {"b": {}}}}
        )
