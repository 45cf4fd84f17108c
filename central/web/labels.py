"""Chinese-first labels the console shows for the wire's enumerations."""

from __future__ import annotations

from broker.payloads import Category, EventKind, RuleName, Severity

RULES: dict[str, str] = {
    RuleName.MOTIONLESS_BIRD: "鸟类静止（疑似死亡） motionless bird",
    RuleName.MORTALITY_CLUSTER: "聚集性死亡 mortality cluster",
    RuleName.ABNORMAL_COUNT: "数量异常 abnormal count",
    RuleName.NIGHT_INTRUSION: "夜间人员车辆 night intrusion",
    RuleName.FREE_ROAMING_DOG: "游荡犬 free-roaming dog",
    RuleName.HIGH_RISK_SPECIES: "高风险物种 high-risk species",
    RuleName.CAMERA_HEALTH: "设备故障 camera / node fault",
    RuleName.STORAGE_LOW: "存储空间不足 storage low",
    RuleName.STATIC_OBJECT: "静止物体 static object",
    # the daily report's notices to the station heads (central/reports/delivery.py)
    "report_draft": "日报待签发 report draft ready",
    "report_unsigned": "日报未经审核 report sent unsigned",
    "report_missing": "日报未上报 report not delivered",
    "report_undelivered": "日报送达超时 report overdue",
}
DELIVERY_STATES: dict[str, str] = {"pending": "重试中 retrying", "delivered": "已送达 delivered"}
CHANNELS: dict[str, str] = {"smtp": "邮件 e-mail", "http": "上报接口 upload"}
SEVERITIES: dict[str, str] = {
    Severity.CRITICAL: "紧急 critical",
    Severity.ALERT: "警报 alert",
    Severity.WARNING: "注意 warning",
    Severity.INFO: "信息 info",
}
CATEGORIES: dict[str, str] = {
    Category.BIRD: "鸟类 bird",
    Category.ANIMAL: "兽类/其他动物 animal",
    Category.DOG: "犬 dog",
    Category.PERSON: "人员 person",
    Category.VEHICLE: "车辆 vehicle",
    Category.CAMERA: "设备 camera",
}
KINDS: dict[str, str] = {
    EventKind.ANOMALY: "异常 anomaly",
    EventKind.OBSERVATION: "观测 observation",
}
REVIEW_STATES: dict[str, str] = {
    "unreviewed": "待处理 unreviewed",
    "confirmed": "已确认 confirmed",
    "dismissed": "已排除 dismissed",
}
PROTECTION: dict[str, str] = {"I": "国家一级 Class I", "II": "国家二级 Class II"}
NODE_STATES: dict[str, str] = {"online": "在线 online", "offline": "离线 offline"}


def rule(name: str | None) -> str:
    return RULES.get(name or "", name or "—")


ALERT_STATES: dict[str, str] = {
    "triggered": "待通知 triggered",
    "notified": "已通知 notified",
    "acknowledged": "已接警 acknowledged",
    "resolved": "已结束 resolved",
    "silenced": "静默 silenced",
}
MESSAGE_STATES: dict[str, str] = {
    "pending": "待发送 pending",
    "submitted": "已提交 submitted",
    "delivered": "已送达 delivered",
    "failed": "失败 failed",
    "capped": "超出发送上限，未发送 over the daily cap: not sent",
    "uncertain": "待回执确认 uncertain (awaiting receipt)",
    "sending": "发送中 sending",
    "cancelled": "已取消（告警已被接警）cancelled: the alert was taken",
}
