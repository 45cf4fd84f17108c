"""abnormal_count: robust baseline, rises during the day, drops at day close, hysteresis."""

from __future__ import annotations

from datetime import timedelta

from broker.payloads import Category, Severity
from edge.rules import Finding
from edge.rules.counts import AbnormalCountRule, baseline, robust_z
from edge.rules.state import RuleState
from surveillance.settings import AbnormalCountSettings
from tests.edge.rules.factory import T0, det, sighting


def test_baseline_is_robust_to_one_outlier() -> None:
    b = baseline([2, 3, 2, 40, 3, 2, 3])
    assert b.median == 3 and b.scale < 2
    assert robust_z(3, b) == 0
    assert baseline([0, 0, 0]).scale == 0.5  # floor for a perfectly steady history


def _day(rule: AbnormalCountRule, day: int, birds: int, hour: int = 9) -> list[Finding]:
    dets = [det(Category.BIRD, x=50 * i, y=10) for i in range(birds)]
    return list(rule.evaluate(sighting(*dets, at=T0 + timedelta(days=day, hours=hour - 8))))


def test_rise_fires_once_and_rearms_after_normal_day() -> None:
    rule = AbnormalCountRule(AbnormalCountSettings(), RuleState())
    for d in range(7):
        assert _day(rule, d, 2 + d % 2) == []
    out = _day(rule, 7, 12)
    assert len(out) == 1
    f = out[0]
    assert (f.rule, f.severity, f.count, f.category) == (
        "abnormal_count",
        Severity.WARNING,
        12,
        Category.BIRD,
    )
    assert "远高于近7天中位数" in f.message_zh
    assert _day(rule, 7, 13, hour=10) == []  # same day, still high: nothing new
    assert _day(rule, 8, 11) == []  # next day still high: hysteresis holds
    assert _day(rule, 9, 2) == []  # normal day; closing day 9 re-arms it
    assert _day(rule, 10, 3) == []
    assert len(_day(rule, 11, 15)) == 1


def test_drop_is_judged_when_the_day_is_over() -> None:
    rule = AbnormalCountRule(AbnormalCountSettings(), RuleState())
    for d in range(7):
        _day(rule, d, 10)
    assert _day(rule, 7, 1) == []  # the day is not over
    out = _day(rule, 8, 10)
    assert [f.message_en for f in out] == [
        "bird count 1 at cam1 on 2026-11-28, far below the 7-day median 10"
    ]


def test_no_event_before_min_history() -> None:
    rule = AbnormalCountRule(AbnormalCountSettings(), RuleState())
    for d in range(3):
        _day(rule, d, 1)
    assert _day(rule, 3, 50) == []
