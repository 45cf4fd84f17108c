"""The rules' message catalogue: one sentence per finding, Chinese first with English beside it.

Rule, category and severity names come from broker/vocabulary.py; this module holds sentences.
"""

from __future__ import annotations

from broker.payloads import CameraState, Category
from broker.vocabulary import CATEGORIES

Message = tuple[str, str]  # (zh, en)

OBSERVATION = ("{camera} 拍到{count}个{what_zh}", "{camera} saw {count} {what_en}(s)")
NIGHT_INTRUSION = (
    "夜间{when}在{camera}发现{count}个{what_zh}，疑似盗猎",
    "{count} {what_en}(s) at {camera} at {when} at night, suspected poaching",
)
ZONE_INTRUSION = (
    "{when}在{camera}禁入区“{zone}”发现{count}个{what_zh}，疑似盗猎",
    "{count} {what_en}(s) in restricted zone '{zone}' of {camera} at {when}, suspected poaching",
)
FREE_ROAMING_DOG = (
    "{camera}发现{count}只犬在保护区内游荡，威胁鸟类繁殖并有狂犬病风险",
    "{count} free-roaming dog(s) at {camera}, a threat to nesting birds and a rabies risk",
)
MOTIONLESS_BIRD = (
    "发现{count}只{what_zh}在同一位置静止超过{minutes}分钟，疑似死亡或患病",
    "{count} {what_en} motionless for over {minutes} minutes at the same place, "
    "suspected dead or sick",
)
STATIC_OBJECT = (
    "{camera}疑似静态物体（树桩/诱饵），请审核；确认后标记为背景",
    "possible static object (stump/decoy) at {camera}, please review and mark it as background",
)
MORTALITY_CLUSTER = (
    "{hours}小时内在{cameras}个相机发现{count}只{what_zh}疑似死亡，疑似聚集性死亡",
    "{count} {what_en} suspected dead within {hours} h at {cameras} camera(s), "
    "suspected mortality cluster",
)
PROTECTED_DEATH = (
    "发现国家{level}级保护动物{what_zh}疑似死亡",
    "a nationally protected (class {level}) {what_en} suspected dead",
)
COUNT_RISE = (
    "{camera}今日{what_zh}数量{count}，远高于近{days}天中位数{median}",
    "{what_en} count {count} at {camera} today, far above the {days}-day median {median}",
)
COUNT_DROP = (
    "{camera}{day}{what_zh}数量{count}，远低于近{days}天中位数{median}",
    "{what_en} count {count} at {camera} on {day}, far below the {days}-day median {median}",
)
HIGH_RISK_SPECIES = (
    "{camera}发现{count}只高风险物种{what_zh}（{group_zh}）进入“{zone}”（{zone_kind_zh}）",
    "{count} {what_en} ({group_en}, high avian-influenza risk) in '{zone}' ({zone_kind_en}) "
    "at {camera}",
)
CAMERA_HEALTH = (
    "{camera}摄像机{state_zh}，请尽快检修",
    "camera {camera}: {state_en}, please check it",
)
CAMERA_CAUSE = ("。原因：{cause_zh}", "; cause: {cause_en}")
AGGREGATED = ("（冷却期内另有{n}次同类发现）", " ({n} more during the cooldown)")

CAMERA_STATES: dict[CameraState, Message] = {
    CameraState.NO_FRAMES: ("无画面", "no frames"),
    CameraState.FROZEN: ("画面冻结", "frozen frames"),
    CameraState.BLACK: ("黑屏", "black frames"),
    CameraState.MOVED: ("视角被移动（疑似人为破坏）", "view moved (suspected tampering)"),
}
ZONE_KINDS: dict[str, Message] = {
    "restricted": ("禁入区", "restricted zone"),
    "near_poultry": ("靠近家禽", "near poultry"),
    "near_people": ("靠近人群", "near people"),
}
UNIDENTIFIED_BIRD: Message = ("鸟（未识别物种）", "unidentified bird(s)")


def category_names(category: Category) -> Message:
    """Chinese and English name of a category."""
    return CATEGORIES[category]


def render(template: Message, **fields: object) -> Message:
    """Both sentences of a template filled with the same fields."""
    return template[0].format(**fields), template[1].format(**fields)
