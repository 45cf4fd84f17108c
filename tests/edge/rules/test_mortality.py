"""motionless_bird, static objects and mortality_cluster (time moves by capture times only)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from broker.payloads import Category, EventKind, Severity
from edge.rules.guard import Guarded
from edge.rules.mortality import (
    STATIC_OBJECT,
    DeathLog,
    MortalityClusterRule,
    MotionlessBirdRule,
    death_of,
    find_clusters,
    keys_of_source,
)
from edge.rules.settings import MortalityClusterSettings, MotionlessBirdSettings, RuleSettings
from edge.rules.state import RuleState
from edge.track import Track
from models.species import Catalogue, load_catalogue
from tests.edge.rules.factory import T0, classified, det, sighting


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def _rule(catalogue: Catalogue) -> tuple[MotionlessBirdRule, DeathLog, RuleState]:
    state, deaths = RuleState(), DeathLog()
    return MotionlessBirdRule(MotionlessBirdSettings(), state, deaths, catalogue), deaths, state


def test_bird_still_for_ten_minutes_is_reported_once(catalogue: Catalogue) -> None:
    rule, deaths, _ = _rule(catalogue)
    assert rule.evaluate(sighting(minutes=-5)) == []  # the scene without the bird
    egret = {0: classified("Egretta garzetta", "白鹭", "Little Egret")}
    findings = []
    for m in range(0, 30, 2):
        findings += rule.evaluate(
            sighting(det(Category.BIRD, x=400 + m % 3), minutes=m, species=egret)
        )
    assert len(findings) == 1
    f = findings[0]
    assert (f.rule, f.kind, f.severity, f.count) == (
        "motionless_bird",
        EventKind.ANOMALY,
        Severity.ALERT,
        1,
    )
    assert f.started_at == T0 and f.until == T0 + timedelta(minutes=10)
    assert f.message_zh == "发现1只白鹭在同一位置静止超过10分钟，疑似死亡或患病"
    assert f.message_en.startswith("1 Little Egret motionless for over 10 minutes")
    assert f.species is not None and f.species.scientific_name == "Egretta garzetta"
    assert f.evidence == ("cam1_20261121_080000.jpg", "cam1_20261121_081000.jpg")
    assert len(deaths.deaths) == 1 and deaths.deaths[0].risk_group == "H"


def test_moving_or_brief_birds_are_not_reported(catalogue: Catalogue) -> None:
    rule, _, _ = _rule(catalogue)
    rule.evaluate(sighting(minutes=-5))
    out = []
    for i, m in enumerate(range(0, 30, 2)):
        out += rule.evaluate(sighting(det(Category.BIRD, x=100 + 150 * (i % 5)), minutes=m))
    assert out == []
    # seen twice 12 minutes apart but not in between: below min_frames
    rule2, _, _ = _rule(catalogue)
    rule2.evaluate(sighting(minutes=-5))
    assert rule2.evaluate(sighting(det(Category.BIRD), minutes=0)) == []
    assert rule2.evaluate(sighting(det(Category.BIRD), minutes=12)) == []


def test_bird_lost_for_longer_than_the_gap_starts_again(catalogue: Catalogue) -> None:
    rule, _, _ = _rule(catalogue)
    rule.evaluate(sighting(minutes=-5))
    rule.evaluate(sighting(det(Category.BIRD), minutes=0))
    rule.evaluate(sighting(det(Category.BIRD), minutes=4))
    assert rule.evaluate(sighting(det(Category.BIRD), minutes=60)) == []  # gap > 30 min


def test_static_object_is_flagged_once_and_masked_after_review(catalogue: Catalogue) -> None:
    state, deaths = RuleState(), DeathLog()
    settings = RuleSettings()
    rule = Guarded(
        MotionlessBirdRule(settings.motionless_bird, state, deaths, catalogue), settings, state, 30
    )
    stump = det(Category.BIRD, x=600, y=700)
    out = []
    for m in range(0, 120, 2):  # there from the camera's first frame on
        out += rule.evaluate(sighting(stump, minutes=m))
    assert [(f.kind, f.rule, f.severity) for f in out] == [
        (EventKind.OBSERVATION, STATIC_OBJECT, Severity.INFO)
    ]
    assert "请审核" in out[0].message_zh and deaths.deaths == []
    state.mark_background("cam1", stump.normalised(1000, 1000))
    assert rule.evaluate(sighting(stump, minutes=200)) == []


def test_tracked_bird_in_a_live_feed(catalogue: Catalogue) -> None:
    rule, deaths, _ = _rule(catalogue)
    first = sighting(minutes=0)
    rule.evaluate(dataclasses.replace(first, track_t=0.0))
    track = Track(
        1, Category.BIRD, "bird", (400, 400, 500, 480), 0.9, first_seen=60.0, last_seen=60.0
    )
    track.stationary_since = 60.0
    out = []
    for s in (300.0, 600.0, 660.0, 700.0):
        track.last_seen = s
        base = sighting(det(Category.BIRD, 400, 400), at=T0 + timedelta(seconds=s))
        out += rule.evaluate(dataclasses.replace(base, tracks=(track,), track_t=s))
    assert len(out) == 1 and out[0].rule == "motionless_bird"
    assert out[0].started_at == T0 + timedelta(seconds=60)
    assert len(deaths.deaths) == 1


def test_find_clusters_species_group_and_protected(catalogue: Catalogue) -> None:
    cfg = MortalityClusterSettings()
    mallards = [
        death_of(
            t=T0 + timedelta(hours=h),
            camera=f"c{h}",
            scientific_name="Anas platyrhynchos",
            catalogue=catalogue,
            ref=str(h),
        )
        for h in range(3)
    ]
    clusters = find_clusters(mallards, now=T0 + timedelta(hours=3), settings=cfg, raised={})
    assert len(clusters) == 1
    assert clusters[0].keys == ("species:Anas platyrhynchos", "group:A")
    assert keys_of_source(clusters[0].source) == ["species:Anas platyrhynchos", "group:A"]
    raised = {k: mallards[-1].t for k in clusters[0].keys}
    assert find_clusters(mallards, now=T0 + timedelta(hours=4), settings=cfg, raised=raised) == []
    # two species of one risk group make a group cluster
    mixed = [
        *mallards[:2],
        death_of(t=T0, camera="c9", scientific_name="Anas crecca", catalogue=catalogue, ref="x"),
    ]
    assert [
        c.key for c in find_clusters(mixed, now=T0 + timedelta(hours=2), settings=cfg, raised={})
    ] == ["group:A"]
    # outside the 24 h window they do not add up
    spread = [
        death_of(
            t=T0 + timedelta(hours=20 * h),
            camera="c",
            scientific_name="Anas platyrhynchos",
            catalogue=catalogue,
            ref=str(h),
        )
        for h in range(3)
    ]
    assert find_clusters(spread, now=T0 + timedelta(hours=40), settings=cfg, raised={}) == []
    ibis = death_of(t=T0, camera="c", scientific_name="Nipponia nippon", catalogue=catalogue)
    (c,) = find_clusters([ibis], now=T0, settings=cfg, raised={})
    assert c.key == "protected:Nipponia nippon"


def test_cluster_rule_raises_once_per_window(catalogue: Catalogue) -> None:
    deaths = DeathLog()
    rule = MortalityClusterRule(MortalityClusterSettings(), deaths)
    for i in range(3):
        deaths.add(
            death_of(
                t=T0 + timedelta(minutes=i),
                camera=f"cam{i}",
                scientific_name=None,
                catalogue=catalogue,
                ref=str(i),
            )
        )
    out = rule.evaluate(sighting(minutes=5))
    assert [(f.rule, f.severity, f.count) for f in out] == [
        ("mortality_cluster", Severity.CRITICAL, 3)
    ]
    assert out[0].message_zh == "24小时内在3个相机发现3只鸟（未识别物种）疑似死亡，疑似聚集性死亡"
    assert rule.evaluate(sighting(minutes=6)) == []
    deaths.add(
        death_of(
            t=T0 + timedelta(minutes=7),
            camera="cam1",
            scientific_name=None,
            catalogue=catalogue,
            ref="4",
        )
    )
    assert rule.evaluate(sighting(minutes=8)) == []  # the 4th alone is no new cluster


def test_protected_species_alone_is_critical(catalogue: Catalogue) -> None:
    deaths = DeathLog()
    rule = MortalityClusterRule(MortalityClusterSettings(), deaths)
    deaths.add(death_of(t=T0, camera="cam1", scientific_name="Grus grus", catalogue=catalogue))
    (f,) = rule.evaluate(sighting(minutes=1))
    assert f.severity is Severity.CRITICAL and f.message_zh == "发现国家二级保护动物灰鹤疑似死亡"
    assert f.species is not None and f.species.chinese_name == "灰鹤"
