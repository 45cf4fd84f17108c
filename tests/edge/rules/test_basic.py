"""night_intrusion (hours and restricted zones), free_roaming_dog, observations."""

from __future__ import annotations

from datetime import datetime

from broker.payloads import Category, EventKind, Severity
from edge.rules.basic import FreeRoamingDogRule, NightIntrusionRule, ObservationRule, in_hours
from surveillance.settings import RuleSettings
from tests.edge.rules.factory import SH, det, sighting

ZONE = {"name": "核心区", "kind": "restricted", "polygon": [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]]}


def test_in_hours_wraps_midnight() -> None:
    from datetime import time

    assert in_hours(time(2), time(19), time(6)) and not in_hours(time(12), time(19), time(6))


def test_person_at_night() -> None:
    rule = NightIntrusionRule(RuleSettings())
    night = datetime(2026, 11, 22, 2, 0, tzinfo=SH)
    (f,) = rule.evaluate(sighting(det(Category.PERSON), det(Category.VEHICLE), at=night))
    assert (f.rule, f.category, f.count, f.severity) == (
        "night_intrusion",
        Category.PERSON,
        2,
        Severity.ALERT,
    )
    # people and vehicles are counted apart, each with its own measure word
    assert f.message_zh == "夜间02:00在cam1发现人员1名、车辆1辆，疑似盗猎"
    assert f.message_en == "1 person and 1 vehicle at cam1 at 02:00 at night, suspected poaching"
    (f,) = rule.evaluate(sighting(det(Category.PERSON), det(Category.PERSON, x=600), at=night))
    assert f.message_zh == "夜间02:00在cam1发现人员2名，疑似盗猎"
    day = datetime(2026, 11, 22, 12, 0, tzinfo=SH)
    assert rule.evaluate(sighting(det(Category.PERSON), at=day)) == []


def test_restricted_zone_by_day_and_camera_hours() -> None:
    settings = RuleSettings.model_validate(
        {"cameras": {"cam1": {"zones": [ZONE], "night_start": "22:00", "night_end": "05:00"}}}
    )
    rule = NightIntrusionRule(settings)
    noon = datetime(2026, 11, 22, 12, 0, tzinfo=SH)
    inside = det(Category.PERSON, x=100, y=600)  # bottom-centre (150, 680) in the zone
    outside = det(Category.PERSON, x=700, y=100)
    (f,) = rule.evaluate(sighting(inside, outside, at=noon))
    assert f.count == 1 and "禁入区“核心区”" in f.message_zh
    assert rule.evaluate(sighting(outside, at=noon)) == []
    evening = datetime(2026, 11, 22, 20, 0, tzinfo=SH)  # night by default, not on this camera
    assert rule.evaluate(sighting(outside, at=evening)) == []


def test_dog_and_observation() -> None:
    (f,) = FreeRoamingDogRule().evaluate(sighting(det(Category.DOG), det(Category.DOG, x=10)))
    assert (f.rule, f.count, f.kind) == ("free_roaming_dog", 2, EventKind.ANOMALY)
    obs = ObservationRule().evaluate(sighting(det(Category.BIRD), det(Category.DOG)))
    assert [(o.category, o.kind) for o in obs] == [
        (Category.BIRD, EventKind.OBSERVATION),
        (Category.DOG, EventKind.OBSERVATION),
    ]


def test_observations_split_birds_by_identified_species() -> None:
    from edge.rules.basic import ObservationRule
    from tests.edge.rules.factory import classified, det, sighting

    egret = classified("Egretta garzetta", "白鹭", "Little Egret")
    heron = classified("Ardea cinerea", "苍鹭", "Grey Heron", 0.7)
    s = sighting(
        det(Category.BIRD, x=100),
        det(Category.BIRD, x=300),
        det(Category.BIRD, x=500),
        det(Category.BIRD, x=700),
        det(Category.DOG),
        species={0: egret, 1: egret, 2: heron},
    )
    found = {
        (f.category, f.species.scientific_name if f.species else None): f
        for f in ObservationRule().evaluate(s)
    }
    assert set(found) == {
        (Category.BIRD, "Egretta garzetta"),
        (Category.BIRD, "Ardea cinerea"),
        (Category.BIRD, None),
        (Category.DOG, None),
    }
    assert found[(Category.BIRD, "Egretta garzetta")].count == 2
    assert found[(Category.BIRD, "Egretta garzetta")].message_zh == "cam1拍到2只白鹭"
    assert found[(Category.BIRD, "Egretta garzetta")].message_en == "cam1 saw 2 Little Egrets"
    assert found[(Category.BIRD, None)].count == 1


def test_observations_use_the_measure_word_of_what_was_seen() -> None:
    s = sighting(
        det(Category.PERSON),
        det(Category.PERSON, x=600),
        det(Category.VEHICLE, y=700),
        det(Category.BIRD, x=100),
        det(Category.DOG, x=100, y=700),
    )
    texts = [(f.message_zh, f.message_en) for f in ObservationRule().evaluate(s)]
    assert sorted(texts) == sorted(
        [
            ("cam1拍到1只鸟", "cam1 saw 1 bird"),
            ("cam1拍到1只犬", "cam1 saw 1 dog"),
            ("cam1拍到2名人员", "cam1 saw 2 people"),
            ("cam1拍到1辆车", "cam1 saw 1 vehicle"),
        ]
    )
