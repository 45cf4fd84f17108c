"""The rules' message catalogue: one sentence per finding, Chinese first with English beside it.

Rule, category and severity names come from broker/vocabulary.py; this module holds sentences
and the counted nouns they use (Chinese measure words: 只 for animals, 名 for people, 辆 for
vehicles, 台 for cameras).
"""

from __future__ import annotations

from collections.abc import Mapping

from broker.payloads import CameraState, Category
from broker.vocabulary import CATEGORIES

Message = tuple[str, str]  # (zh, en)

OBSERVATION = ("{camera}拍到{what_zh}", "{camera} saw {what_en}")
NIGHT_INTRUSION = (
    "夜间{when}在{camera}发现{what_zh}，疑似盗猎",
    "{what_en} at {camera} at {when} at night, suspected poaching",
)
ZONE_INTRUSION = (
    "{when}在{camera}禁入区“{zone}”发现{what_zh}，疑似盗猎",
    "{what_en} in restricted zone '{zone}' of {camera} at {when}, suspected poaching",
)
FREE_ROAMING_DOG = (
    "{camera}发现游荡犬{count}只，可能捕食繁殖期鸟类，并有传播狂犬病、犬瘟热的风险",
    "{count} free-roaming dog(s) at {camera}: a threat to nesting birds, may carry rabies "
    "and distemper",
)
MOTIONLESS_BIRD = (
    "发现{count}只{what_zh}在同一位置静止超过{minutes}分钟，疑似死亡或患病",
    "{count} {what_en} motionless for over {minutes} minutes at the same place, "
    "suspected dead or sick",
)
STATIC_OBJECT = (
    "{camera}画面中有一个从第一张画面起就没动过的“鸟”，可能是树桩或诱饵，请审核；"
    "如确认不是鸟，请标记为背景",
    "a bird-like object at {camera} has not moved since the camera's first frame "
    "(stump or decoy?): please review and mark it as background",
)
# Mortality clusters: one sentence for the deaths, then what they amount to.
DEATHS = (
    "{hours}小时内在{cameras_zh}{so_far_zh}发现{count}只{what_zh}疑似死亡",
    "{count} {what_en} suspected dead within {hours} h at {cameras_en}{so_far_en}",
)
PROTECTED_DEATH = (
    "发现1只国家{level_zh}级保护动物{what_zh}疑似死亡",
    "1 nationally protected (class {level_en}) {what_en} suspected dead",
)
PROTECTED_DEATHS = (
    "{hours}小时内在{cameras_zh}{so_far_zh}发现{count}只国家{level_zh}级保护动物{what_zh}疑似死亡",
    "{count} nationally protected (class {level_en}) {what_en} suspected dead within {hours} h "
    "at {cameras_en}{so_far_en}",
)
SO_FAR: Message = ("累计", " so far")
NEW_DEATHS = ("（新增{new}只）", " ({new} new)")
IS_CLUSTER: Message = ("，已达聚集性死亡标准", "; this is a mortality cluster")
FOLLOW_UP: Message = ("【续报】", "Update: ")
COUNT_RISE = (
    "{camera}今日{what_zh}数量达{count}{unit}，远高于近{days}天中位数{median}{unit}",
    "{what_en} count {count} at {camera} today, far above the {days}-day median {median}",
)
COUNT_DROP = (
    "{camera}在{day}的{what_zh}数量仅{count}{unit}，远低于近{days}天中位数{median}{unit}",
    "{what_en} count {count} at {camera} on {day}, far below the {days}-day median {median}",
)
HIGH_RISK_SPECIES = (
    "{camera}发现{count}只{what_zh}进入“{zone}”（{zone_kind_zh}），属禽流感高风险类群{group_zh}",
    "{count} {what_en} ({group_en}, high avian-influenza risk) in '{zone}' ({zone_kind_en}) "
    "at {camera}",
)
CAMERA_HEALTH = (
    "{camera}摄像机{state_zh}，请尽快检修",
    "camera {camera}: {state_en}, please check it",
)
CAMERA_CAUSE = ("。原因：{cause_zh}", "; cause: {cause_en}")
AGGREGATED = ("（冷却期内另有{n}次相同发现）", " ({n} more during the cooldown)")

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
UNIDENTIFIED_BIRD: Message = ("未识别种类的鸟", "unidentified bird")
ANY_BIRD: Message = ("鸟（不分种类）", "bird of any species")
LEVELS: dict[str, Message] = {"I": ("一", "I"), "II": ("二", "II")}

# How a category is counted: measure word, noun after a number (1辆车), noun before one
# (车辆1辆), English singular and plural.
COUNTED: dict[Category, tuple[str, str, str, str, str]] = {
    Category.BIRD: ("只", "鸟", "鸟类", "bird", "birds"),
    Category.ANIMAL: ("只", "动物", "动物", "animal", "animals"),
    Category.DOG: ("只", "犬", "犬", "dog", "dogs"),
    Category.PERSON: ("名", "人员", "人员", "person", "people"),
    Category.VEHICLE: ("辆", "车", "车辆", "vehicle", "vehicles"),
    Category.CAMERA: ("台", "摄像机", "摄像机", "camera", "cameras"),
}


def category_names(category: Category) -> Message:
    """Chinese and English name of a category as a class (鸟类, bird), e.g. for counts."""
    return CATEGORIES[category]


def noun(category: Category) -> Message:
    """Chinese and English noun of one of a category (鸟, bird), e.g. 1只鸟."""
    _, zh, _, en, _ = COUNTED[category]
    return zh, en


def unit(category: Category) -> str:
    """The Chinese measure word of a category (只, 名, 辆, 台)."""
    return COUNTED[category][0]


def plural_en(name: str, n: int) -> str:
    """An English noun for `n` of it: Mallard -> Mallards, Cygnus sp. -> Cygnus spp."""
    if n == 1 or (name.endswith("s") and not name.endswith(" sp.")):
        return name
    if name.endswith(" sp."):
        return name[: -len("sp.")] + "spp."
    if name.endswith("Goose"):
        return name[: -len("Goose")] + "Geese"
    if name.endswith(("x", "ch", "sh")):
        return name + "es"
    return name + "s"


def counted(
    category: Category, n: int, name_zh: str | None = None, name_en: str | None = None
) -> Message:
    """`n` of a category or a named species: 3只白鹭 / 3 Little Egrets, 2名人员 / 2 people."""
    measure, zh, _, en_one, en_many = COUNTED[category]
    if name_zh is not None:
        en = plural_en(name_en or name_zh, n)
        return f"{n}{measure}{name_zh}", f"{n} {en}"
    return f"{n}{measure}{zh}", f"{n} {en_one if n == 1 else en_many}"


def tally(counts: Mapping[Category, int]) -> Message:
    """Several categories counted apart, noun first as in a report: 人员1名、车辆1辆."""
    zh = "、".join(f"{COUNTED[c][2]}{n}{COUNTED[c][0]}" for c, n in counts.items())
    en = " and ".join(counted(c, n)[1] for c, n in counts.items())
    return zh, en


def cameras(n: int) -> Message:
    """`n` cameras: 3台相机 / 3 cameras."""
    return f"{n}台相机", f"{n} camera" if n == 1 else f"{n} cameras"


def render(template: Message, **fields: object) -> Message:
    """Both sentences of a template filled with the same fields."""
    return template[0].format(**fields), template[1].format(**fields)


def join(*parts: Message) -> Message:
    """Sentences (or parts of one) joined, Chinese with Chinese and English with English."""
    return "".join(p[0] for p in parts), "".join(p[1] for p in parts)
