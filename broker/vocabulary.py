"""Names people read for the contract's codes (rules, categories, severities): Chinese first.

Edge explanations, central SMS and reports all take their wording of a code from here.
"""

from __future__ import annotations

from broker.payloads import Category, RuleName, Severity

RULES: dict[RuleName, tuple[str, str]] = {
    RuleName.MOTIONLESS_BIRD: (
        "静止鸟类（疑似死亡或患病）",
        "motionless bird (suspected dead or sick)",
    ),
    RuleName.MORTALITY_CLUSTER: ("鸟类聚集性死亡", "bird mortality cluster"),
    RuleName.ABNORMAL_COUNT: ("数量异常", "abnormal count"),
    RuleName.NIGHT_INTRUSION: (
        "夜间人员/车辆闯入（疑似盗猎）",
        "person or vehicle at night (suspected poaching)",
    ),
    RuleName.FREE_ROAMING_DOG: ("流浪犬进入保护区", "free-roaming dog in the reserve"),
    RuleName.HIGH_RISK_SPECIES: (
        "高风险物种靠近禽类/人群",
        "high-risk species near poultry or people",
    ),
    RuleName.CAMERA_HEALTH: ("摄像机故障", "camera failure"),
    RuleName.STORAGE_LOW: ("节点存储空间不足", "node storage nearly full"),
    RuleName.STATIC_OBJECT: ("疑似静止物体（待审核）", "possible static object (to review)"),
}

CATEGORIES: dict[Category, tuple[str, str]] = {
    Category.ANIMAL: ("动物", "animal"),
    Category.BIRD: ("鸟类", "bird"),
    Category.DOG: ("犬", "dog"),
    Category.PERSON: ("人员", "person"),
    Category.VEHICLE: ("车辆", "vehicle"),
    Category.CAMERA: ("摄像机", "camera"),
}

SEVERITIES: dict[Severity, tuple[str, str]] = {
    Severity.INFO: ("提示", "info"),
    Severity.WARNING: ("注意", "warning"),
    Severity.ALERT: ("预警", "alert"),
    Severity.CRITICAL: ("紧急", "critical"),
}


def rule_zh(rule: str | None) -> str:
    """Chinese name of a rule (the code itself when unknown)."""
    try:
        return RULES[RuleName(rule or "")][0]
    except ValueError:
        return rule or ""


def category_zh(category: Category | str) -> str:
    """Chinese name of a detection category."""
    try:
        return CATEGORIES[Category(category)][0]
    except ValueError:
        return str(category)


def severity_zh(severity: Severity | str) -> str:
    """Chinese name of a severity."""
    try:
        return SEVERITIES[Severity(severity)][0]
    except ValueError:
        return str(severity)
