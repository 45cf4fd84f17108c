"""high_risk_species, camera_health, cooldown/aggregation, masks and per-camera switches."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from broker.payloads import CameraState, Category, Severity
from edge.classify import Classification, SpeciesCandidate, roll_up
from edge.config import ConfigError, parse_config
from edge.rules import Sighting
from edge.rules.basic import FreeRoamingDogRule
from edge.rules.counts import AbnormalCountRule
from edge.rules.guard import Guarded
from edge.rules.health import CameraHealthRule, camera_health_finding
from edge.rules.risk import HighRiskSpeciesRule
from edge.rules.state import RuleState
from models.species import load_catalogue
from surveillance.settings import AbnormalCountSettings, RuleSettings
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
    assert f.message_zh == "cam1发现1只绿头鸭进入“养鸭场”（靠近家禽），属禽流感高风险类群雁鸭类"
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
    assert out[1].message_zh.endswith("（冷却期内另有14次相同发现）")
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
    with pytest.raises(ConfigError, match="不在本节点的 cameras 中"):
        parse_config(
            {"site": "cx", "node": "n1", "cameras": [{"id": "a"}], "rules": {"cameras": {"b": {}}}}
        )


def test_bird_named_only_to_genus_near_poultry() -> None:
    """The classifier cannot tell mallard from spot-billed duck and reports genus Anas: every
    Anas of the catalogue is a duck (group A), so it is as high-risk as either species."""
    catalogue = load_catalogue()
    settings = RuleSettings.model_validate({"cameras": {"cam1": {"zones": [POULTRY]}}})
    dist = [
        SpeciesCandidate("Anas platyrhynchos", "绿头鸭", "Mallard", 0.45),
        SpeciesCandidate("Anas zonorhyncha", "斑嘴鸭", "Eastern Spot-billed Duck", 0.40),
        SpeciesCandidate("Fulica atra", "白骨顶", "Eurasian Coot", 0.15),
    ]
    best = roll_up(dist, catalogue, 0.5, 0.5)
    assert best is not None and best.rank == "genus"
    anas = {0: Classification(dist, best, False, "test")}
    (f,) = HighRiskSpeciesRule(settings, catalogue).evaluate(
        sighting(det(Category.BIRD, y=100), species=anas)
    )
    assert (
        f.message_zh
        == "cam1发现1只鸭属（未定种）进入“养鸭场”（靠近家禽），属禽流感高风险类群雁鸭类"
    )
    assert f.species is not None and f.species.scientific_name == "Anas"


def _state(minutes: float, state: CameraState) -> Sighting:
    return Sighting(
        "cam1", T0 + timedelta(minutes=minutes), [], 1, 1, "live", "", camera_state=state
    )


def test_cooldown_is_per_incident_camera_states() -> None:
    """Frozen, then the view moved (tamper), then black: three incidents, each reported; the
    same state again within the cooldown is the same incident and is held back."""
    settings = RuleSettings()
    rule = Guarded(CameraHealthRule(settings.camera_health), settings, RuleState(), 30)
    states = [
        (0, CameraState.FROZEN),
        (10, CameraState.MOVED),
        (25, CameraState.BLACK),
        (28, CameraState.FROZEN),
    ]
    out = [f for m, st in states for f in rule.evaluate(_state(m, st))]
    assert [(f.severity, f.message_zh) for f in out] == [
        (Severity.WARNING, "cam1摄像机画面冻结，请尽快检修"),
        (Severity.ALERT, "cam1摄像机视角被移动（疑似人为破坏），请尽快检修"),
        (Severity.WARNING, "cam1摄像机黑屏，请尽快检修"),
    ]
    (again,) = rule.evaluate(_state(31, CameraState.FROZEN))  # cooldown of the freeze is over
    assert again.aggregated == 1 and "画面冻结" in again.message_zh


def test_cooldown_is_per_incident_counts() -> None:
    """A bird surge and a dog surge in one image are two incidents: both are reported."""
    settings, state = RuleSettings(), RuleState()
    rule = Guarded(
        AbnormalCountRule(settings.abnormal_count, state, load_catalogue()),
        settings,
        state,
        settings.abnormal_count.cooldown_min,
    )
    for d in range(7):
        rule.evaluate(
            sighting(det(Category.BIRD), det(Category.BIRD, x=600), minutes=(d - 7) * 1440)
        )
    birds = [det(Category.BIRD, x=10 + 60 * i) for i in range(12)]
    dogs = [det(Category.DOG, x=10 + 60 * i, y=700) for i in range(6)]
    out = rule.evaluate(sighting(*birds, *dogs))
    assert sorted(f.message_zh for f in out) == [
        "cam1今日犬数量达6只，远高于近7天中位数0只",
        "cam1今日鸟类数量达12只，远高于近7天中位数2只",
    ]
