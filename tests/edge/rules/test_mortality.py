"""motionless_bird, static objects and mortality_cluster (time moves by capture times only)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from broker.payloads import Category, EventKind, Severity
from edge.classify import Classification, SpeciesCandidate, roll_up
from edge.config import parse_config
from edge.pipeline import build_rules
from edge.rules import Finding, Rule, Sighting
from edge.rules.clusters import DeathLog
from edge.rules.guard import Guarded
from edge.rules.mortality import STATIC_OBJECT, MortalityClusterRule, MotionlessBirdRule
from edge.rules.state import RuleState
from edge.track import Track
from models.species import Catalogue, load_catalogue
from surveillance.clusters import Death, cluster_text, death_of, find_clusters, keys_of_source
from surveillance.settings import MortalityClusterSettings, MotionlessBirdSettings, RuleSettings
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
    assert out[0].message_zh == (
        "24小时内在3台相机发现3只未识别种类的鸟疑似死亡，已达聚集性死亡标准"
    )
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
    assert f.severity is Severity.CRITICAL and f.message_zh == "发现1只国家二级保护动物灰鹤疑似死亡"
    assert f.message_en == "1 nationally protected (class II) Common Crane suspected dead"
    assert f.species is not None and f.species.chinese_name == "灰鹤"


# -- deaths named to genus or family, windows, groups (find_clusters) -----------------------------
MALLARD = "Anas platyrhynchos"


def _deaths(
    catalogue: Catalogue, *spec: tuple[float, str | None], camera: str = "cam1"
) -> list[Death]:
    """Deaths (hours after T0, scientific name) on one camera."""
    return [
        death_of(
            t=T0 + timedelta(hours=h),
            camera=camera,
            scientific_name=name,
            catalogue=catalogue,
            ref=f"{camera}/{i}",
        )
        for i, (h, name) in enumerate(spec)
    ]


def _texts(deaths: list[Death], hours: float, cfg: MortalityClusterSettings) -> list[str]:
    found = find_clusters(deaths, now=T0 + timedelta(hours=hours), settings=cfg, raised={})
    return [cluster_text(c, cfg)[0] for c in found]


def test_bird_named_only_to_genus_or_family_keeps_protection_and_group(
    catalogue: Catalogue,
) -> None:
    cfg = MortalityClusterSettings()
    (swan,) = _deaths(catalogue, (0, "Cygnus"))  # both catalogue swans are class II, group A
    assert (swan.protection_level, swan.risk_group, swan.chinese_name) == (
        "II",
        "A",
        "天鹅属（未定种）",
    )
    assert _texts([swan], 0, cfg) == ["发现1只国家二级保护动物天鹅属（未定种）疑似死亡"]
    assert _texts(_deaths(catalogue, (0, "Ciconia")), 0, cfg) == [
        "发现1只国家一级保护动物鹳属（未定种）疑似死亡"
    ]
    (goose,) = _deaths(catalogue, (0, "Anser"))  # some geese are class II, some are not
    assert goose.protection_level is None and goose.risk_group == "A"
    # two mallards and a swan named to genus: three dead ducks, geese or swans
    mixed = _deaths(catalogue, (0, MALLARD), (1, MALLARD), (2, "Cygnus"))
    assert _texts(mixed, 2, cfg) == [
        "发现1只国家二级保护动物天鹅属（未定种）疑似死亡",
        "24小时内在1台相机发现3只雁鸭类疑似死亡，已达聚集性死亡标准",
    ]
    family = _deaths(catalogue, (0, "Anatidae"), (1, "Anatidae"), (2, "Anatidae"))
    assert _texts(family, 2, cfg) == [
        "24小时内在1台相机发现3只鸭科（未定种）疑似死亡，已达聚集性死亡标准"
    ]


def test_window_includes_deaths_exactly_window_h_apart(catalogue: Catalogue) -> None:
    cfg = MortalityClusterSettings()
    ducks = _deaths(catalogue, (0, MALLARD), (12, MALLARD), (24, MALLARD))
    assert _texts(ducks, 24, cfg) == ["24小时内在1台相机发现3只绿头鸭疑似死亡，已达聚集性死亡标准"]
    late = _deaths(catalogue, (0, MALLARD), (12, MALLARD), (24.01, MALLARD))
    assert _texts(late, 24.01, cfg) == []


def test_catch_all_groups_do_not_make_group_clusters(catalogue: Catalogue) -> None:
    """A tree sparrow, a magpie and a coot on one day say nothing about one disease."""
    others = _deaths(catalogue, (0, "Passer montanus"), (1, "Pica serica"), (2, "Fulica atra"))
    assert {d.risk_group for d in others} == {"O"}
    assert _texts(others, 2, MortalityClusterSettings()) == []
    widened = MortalityClusterSettings(groups=["A", "O"])
    assert _texts(others, 2, widened) == [
        "24小时内在1台相机发现3只其他鸟类疑似死亡，已达聚集性死亡标准"
    ]


def test_unidentified_bird_counts_with_others_only_when_enabled(catalogue: Catalogue) -> None:
    deaths = _deaths(catalogue, (0, MALLARD), (1, MALLARD), (2, None))
    assert _texts(deaths, 2, MortalityClusterSettings()) == []
    assert _texts(deaths, 2, MortalityClusterSettings(any_bird=True)) == [
        "24小时内在1台相机发现3只鸟（不分种类）疑似死亡，已达聚集性死亡标准"
    ]


def test_protected_species_cluster_says_how_many(catalogue: Catalogue) -> None:
    cfg = MortalityClusterSettings()
    swans = _deaths(catalogue, (0, "Cygnus cygnus"), (0.1, "Cygnus cygnus"), (0.2, "Cygnus cygnus"))
    (c,) = find_clusters(swans, now=T0 + timedelta(hours=1), settings=cfg, raised={})
    assert len(c.deaths) == 3
    assert cluster_text(c, cfg) == (
        "24小时内在1台相机发现3只国家二级保护动物大天鹅疑似死亡，已达聚集性死亡标准",
        "3 nationally protected (class II) Whooper Swans suspected dead within 24 h at 1 camera"
        "; this is a mortality cluster",
    )


def test_cameras_watching_the_same_ground_count_a_carcass_once(catalogue: Catalogue) -> None:
    both = [
        *_deaths(catalogue, (0, MALLARD), (0.1, MALLARD), camera="cam1"),
        *_deaths(catalogue, (0.2, MALLARD), (0.3, MALLARD), camera="cam2"),
    ]
    same = MortalityClusterSettings(same_view=[["cam1", "cam2"]])
    assert _texts(both, 1, same) == []  # the same two carcasses, seen twice
    third = _deaths(catalogue, (0.5, MALLARD), camera="cam3")
    assert _texts(both + third, 1, same) == [
        "24小时内在3台相机发现3只绿头鸭疑似死亡，已达聚集性死亡标准"
    ]


# -- one alarm per incident (MortalityClusterRule) ------------------------------------------------
def _add(deaths: DeathLog, catalogue: Catalogue, hours: float, name: str | None) -> None:
    deaths.add(
        death_of(
            t=T0 + timedelta(hours=hours),
            camera="cam1",
            scientific_name=name,
            catalogue=catalogue,
            ref=f"{hours}",
        )
    )


def test_overlapping_deaths_raise_one_alarm_then_follow_ups(catalogue: Catalogue) -> None:
    deaths = DeathLog()
    rule = MortalityClusterRule(MortalityClusterSettings(), deaths)
    for h, name in ((0, MALLARD), (1, MALLARD), (2, "Anas crecca")):
        _add(deaths, catalogue, h, name)
    (first,) = rule.evaluate(sighting(minutes=121))
    assert first.count == 3 and "3只雁鸭类" in first.message_zh
    _add(deaths, catalogue, 3, MALLARD)  # the third mallard: its species' first two are reported
    assert rule.evaluate(sighting(minutes=181)) == []
    _add(deaths, catalogue, 4, MALLARD)
    assert rule.evaluate(sighting(minutes=241)) == []
    _add(deaths, catalogue, 5, "Anas crecca")  # three deaths nobody was told about: an update
    (update,) = rule.evaluate(sighting(minutes=301))
    assert update.severity is Severity.CRITICAL and update.count == 6
    assert update.message_zh == (
        "【续报】24小时内在1台相机累计发现6只雁鸭类疑似死亡（新增3只），已达聚集性死亡标准"
    )
    assert update.message_en.startswith("Update: 6 ducks, geese and swans suspected dead")
    assert rule.evaluate(sighting(minutes=302)) == []


def test_protected_species_deaths_are_one_incident_with_follow_ups(catalogue: Catalogue) -> None:
    deaths = DeathLog()
    rule = MortalityClusterRule(MortalityClusterSettings(), deaths)
    _add(deaths, catalogue, 0, "Cygnus cygnus")
    (f,) = rule.evaluate(sighting(minutes=1))
    assert f.message_zh == "发现1只国家二级保护动物大天鹅疑似死亡"
    _add(deaths, catalogue, 1, "Cygnus cygnus")
    (f,) = rule.evaluate(sighting(minutes=61))
    assert f.count == 2 and f.message_zh == (
        "【续报】24小时内在1台相机累计发现2只国家二级保护动物大天鹅疑似死亡（新增1只）"
    )
    _add(deaths, catalogue, 2, "Cygnus cygnus")
    (f,) = rule.evaluate(sighting(minutes=121))
    assert f.count == 3 and f.message_zh.endswith("（新增1只），已达聚集性死亡标准")


# -- one carcass, many camera-trap bursts (MotionlessBirdRule with the cooldown) ------------------
def _edge_rules(catalogue: Catalogue) -> tuple[list[Guarded], DeathLog]:
    settings, state, deaths = RuleSettings(), RuleState(), DeathLog()
    rules = [
        Guarded(
            MotionlessBirdRule(settings.motionless_bird, state, deaths, catalogue),
            settings,
            state,
            settings.motionless_bird.cooldown_min,
        ),
        Guarded(MortalityClusterRule(settings.mortality_cluster, deaths), settings, state),
    ]
    return rules, deaths


def _run(rules: list[Guarded], s: Sighting) -> list[tuple[str | None, str]]:
    return [(f.rule, f.message_zh) for r in rules for f in r.evaluate(s)]


def test_one_carcass_seen_in_bursts_hours_apart_is_one_death(catalogue: Catalogue) -> None:
    rules, deaths = _edge_rules(catalogue)
    egret = {0: classified("Egretta garzetta", "白鹭", "Little Egret")}
    _run(rules, sighting(minutes=-5))
    out = []
    for h in (0, 2, 4):  # the trap fires every two hours (other animals passing)
        for m in (0, 5, 10):
            out += _run(rules, sighting(det(Category.BIRD), minutes=h * 60 + m, species=egret))
    assert out == [("motionless_bird", "发现1只白鹭在同一位置静止超过10分钟，疑似死亡或患病")]
    (death,) = deaths.deaths
    assert death.t == T0 + timedelta(minutes=10)
    assert death.last_seen == T0 + timedelta(hours=4, minutes=10)
    # a second bird elsewhere in the picture is a new death
    other = det(Category.BIRD, x=700, y=100)
    for m in (300, 305, 310):
        out += _run(rules, sighting(det(Category.BIRD), other, minutes=m, species=egret))
    assert [r for r, _ in out].count("motionless_bird") == 2 and len(deaths.deaths) == 2


def test_second_dead_bird_on_one_camera_is_reported_within_the_cooldown(
    catalogue: Catalogue,
) -> None:
    rules, deaths = _edge_rules(catalogue)
    _run(rules, sighting(minutes=-5))
    first, second = det(Category.BIRD, x=100), det(Category.BIRD, x=700)
    out = []
    for m in range(0, 40, 2):
        out += _run(rules, sighting(first, *([second] if m >= 8 else []), minutes=m))
    assert [r for r, _ in out] == ["motionless_bird", "motionless_bird"]
    assert len(deaths.deaths) == 2


def test_bird_named_to_genus_by_the_classifier_is_a_protected_death(
    catalogue: Catalogue,
) -> None:
    dist = [
        SpeciesCandidate("Cygnus cygnus", "大天鹅", "Whooper Swan", 0.45),
        SpeciesCandidate("Cygnus columbianus", "小天鹅", "Tundra Swan", 0.40),
        SpeciesCandidate("Anser anser", "灰雁", "Greylag Goose", 0.15),
    ]
    swan = {0: Classification(dist, roll_up(dist, catalogue, 0.5, 0.5), False, "test")}
    rules, _ = _edge_rules(catalogue)
    _run(rules, sighting(minutes=-5))
    out = []
    for m in (0, 6, 12):
        out += _run(rules, sighting(det(Category.BIRD), minutes=m, species=swan))
    assert out[-1] == ("mortality_cluster", "发现1只国家二级保护动物天鹅属（未定种）疑似死亡")


# -- memory across a restart (rules.db) -----------------------------------------------------------
def _dead_bird(rules: list[Rule], camera: str, start_min: float) -> list[Finding]:
    out = [f for r in rules for f in r.evaluate(sighting(minutes=start_min - 5, camera=camera))]
    for m in range(0, 14, 2):
        s = sighting(det(Category.BIRD), minutes=start_min + m, camera=camera)
        out += [f for r in rules for f in r.evaluate(s)]
    return [f for f in out if f.kind is EventKind.ANOMALY]


def test_deaths_and_clusters_survive_a_restart(tmp_path: Path, catalogue: Catalogue) -> None:
    config = parse_config(
        {
            "site": "changxing",
            "node": "cx-01",
            "data_dir": str(tmp_path),
            "cameras": [{"id": c} for c in ("cam1", "cam2", "cam3", "cam4")],
        }
    )
    before = build_rules(config, catalogue=catalogue)
    assert [f.rule for f in _dead_bird(before, "cam1", 0)] == ["motionless_bird"]
    assert [f.rule for f in _dead_bird(before, "cam2", 60)] == ["motionless_bird"]
    after = build_rules(config, catalogue=catalogue)  # power cut: the node starts again
    found = _dead_bird(after, "cam3", 120)
    assert [(f.rule, f.count) for f in found] == [("motionless_bird", 1), ("mortality_cluster", 3)]
    again = build_rules(config, catalogue=catalogue)
    assert [f.rule for f in _dead_bird(again, "cam4", 180)] == ["motionless_bird"]  # no repeat
