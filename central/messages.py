"""The one message catalogue: all text a person reads (SMS, reports, API errors), Chinese first."""

from __future__ import annotations

from datetime import datetime

from broker.vocabulary import category_zh, rule_zh, severity_zh

__all__ = ["category_zh", "rule_zh", "severity_zh"]  # one vocabulary, shared with the edge

REVIEW_STATUSES_ZH: dict[str, str] = {
    "unreviewed": "未审核",
    "confirmed": "已确认",
    "dismissed": "已排除",
}

# -- SMS ------------------------------------------------------------------------------------------
SMS_ALERT = (
    "【WildWatch{severity_zh}】{site_zh} {camera} 于 {when} 发现{rule_zh}：{subject} {count}，"
    "置信度{confidence:.2f}。请值班人员立即核查。"
)

NODE_OFFLINE_SILENT = ("节点 {node} 已离线超过 {duration}", "node {node} silent over {duration}")
NODE_OFFLINE_WILL = ("节点 {node} 已断开连接（离线）", "node {node} lost its broker connection")


def duration_zh(seconds: float) -> tuple[str, str]:
    """'5 分钟' / '5 min' (seconds below one minute) for an outage length."""
    if seconds < 60:
        return f"{seconds:.0f} 秒", f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} 分钟", f"{seconds / 60:.0f} min"


def node_offline(*, node: str, silent_s: float | None) -> tuple[str, str]:
    """(Chinese, English) text of a node-offline camera_health event."""
    if silent_s is None:
        return NODE_OFFLINE_WILL[0].format(node=node), NODE_OFFLINE_WILL[1].format(node=node)
    zh, en = duration_zh(silent_s)
    return (
        NODE_OFFLINE_SILENT[0].format(node=node, duration=zh),
        NODE_OFFLINE_SILENT[1].format(node=node, duration=en),
    )


# -- Configuration (refused at start-up) ---------------------------------------------------------
SMS_BACKEND_UNKNOWN = (
    "未知的短信后端 {key!r}（可用：{known}）/ unknown SMS backend {key!r} (known: {known})"
)
NO_DUTY_PHONES = (
    "duty_phones 为空：异常将无人接收短信；确需如此请设置 allow_no_duty_phones: true / "
    "duty_phones is empty, so no one is paged about anomalies; "
    "set allow_no_duty_phones: true if that is intended"
)
CATALOGUE_UNREADABLE = "物种名录 {path} 无法使用 / species catalogue unusable: {error}"
UPLOAD_TOKEN_UNSET = (
    "节点 {node} 的上传令牌 ${env} 未设置 / upload token ${env} of {node} is not set"
)
UPLOAD_TOKEN_SHORT = (
    "节点 {node} 的上传令牌 ${env} 过短（至少 {min} 个字符）/ "
    "upload token ${env} of {node} is too short (at least {min} characters)"
)
UPLOAD_TOKEN_SHARED = (
    "节点 {node} 与 {other} 使用同一个上传令牌 / {node} and {other} share one upload token"
)
STAFF_DUPLICATE = "staff 中 {what} 重复：{value} / duplicate {what} in staff: {value}"
STAFF_TOKEN_IS_UPLOAD_TOKEN = (
    "工作人员 {name} 的令牌与节点上传令牌相同 / staff {name} uses a node's upload token"
)

# -- API ------------------------------------------------------------------------------------------
API_TITLE = "WildWatch 陆生野生动物疫源疫病监测中心 / Wildlife Disease Surveillance Central"
NO_BROKER = "未连接消息代理，无法通知节点 / No broker link to reach the node"
COMMAND_NOT_SENT = "节点命令未送达代理，请稍后重试 / The broker did not accept the command; retry"
NO_SUCH_BOX = "该事件没有这个检测框 / The event has no such box"
UNKNOWN_SPECIES = (
    "物种名录中没有“{name}”，请从名录中选择学名 / "
    "“{name}” is not in the station's species list: choose a scientific name from it"
)
SPECIES_ONLY_ON_CONFIRM = "只有确认时才能指定物种 / A species can be named only when confirming"
BOX_WITHOUT_SPECIES = (
    "指定检测框时须同时指定物种 / A box (box_index) can be given only with the species it is"
)
BACKGROUND_NOTE = "标记为背景（静态物体）/ marked as background: {note}"
EVENT_NOT_FOUND = "未找到该事件 / Event not found"
DB_UNAVAILABLE = "数据库不可用 / Database unavailable"
NAIVE_DATETIME = "{name} 必须带时区 / {name} needs a UTC offset"
EVIDENCE_TOKEN_INVALID = "缺少或无效的上传令牌 / Missing or unknown upload token"
EVIDENCE_WRONG_NODE = (
    "该令牌属于 {token_node}，不能为 {event_node} 的事件上传证据 / "
    "Token of {token_node} may not upload evidence for an event of {event_node}"
)
EVIDENCE_EVENT_UNKNOWN = (
    "未找到该事件（可能尚未到达中心） / Event not found (it may not have reached central yet)"
)
EVIDENCE_NOT_FOUND = "未找到该证据图片 / Evidence image not found"
RELEASE_NONE = "中心尚未发布模型版本 / No model release has been published yet"
RELEASE_NOT_FOUND = "未找到该发布文件 / No such release file"
EVIDENCE_BAD_RANGE = "Content-Range 无效：{detail} / Invalid Content-Range: {detail}"
EVIDENCE_BAD_HASH_HEADER = (
    "X-Content-SHA256 必须是 64 位小写十六进制 / X-Content-SHA256 must be 64 lower-case hex digits"
)
EVIDENCE_OFFSET = (
    "上传位置不符：中心已有 {received} 字节 / "
    "Upload offset mismatch: central holds {received} bytes"
)
EVIDENCE_HASH_MISMATCH = (
    "文件校验失败：SHA-256 不符，已丢弃，请从头重传 / "
    "File check failed: SHA-256 mismatch; the upload was discarded, send it again from the start"
)
EVIDENCE_TOO_LARGE = "证据过大（上限 {limit_mb:g} MB） / Evidence too large (limit {limit_mb:g} MB)"
EVIDENCE_NOT_LISTED = (
    "事件未列出此证据，或其校验值/大小不符 / "
    "The event does not list this evidence, or its hash or size differ"
)
EVIDENCE_EXISTS = "该证据已存在且内容不同 / This evidence is already stored with different content"
REQUEST_INVALID = "请求参数有误 / invalid request: {problems}"
STAFF_TOKEN_INVALID = (
    "缺少或无效的工作人员令牌，请使用 Authorization: Bearer <令牌> / "
    "Missing or unknown staff token; send Authorization: Bearer <token>"
)
NAIVE_TIME = "时间必须带时区（如 +08:00）/ The time needs a UTC offset (e.g. +08:00)"
TIME_OUT_OF_RANGE = (
    "时间须在 {earliest} 至 {latest}（UTC）之间 / The time must lie between {earliest} and "
    "{latest} (UTC)"
)
OFFSET_TOO_LARGE = (
    "翻页位置 offset 不能超过 {max}，请用 since/until 缩小范围 / "
    "offset may not exceed {max}; narrow the query with since/until instead"
)

# -- Daily report ---------------------------------------------------------------------------------
NO_ANOMALY = "无异常"
ZERO_REPORT = "无异常（零报告）"
YES = "是"
NO = "否"
DISEASE_SUMMARY = "发现疫病异常 {count} 起"
DISEASE_SUMMARY_LATE = "发现疫病异常 {count} 起（含补报 {late} 起）"
OTHER_SUMMARY = "其他情况 {count} 起"
EQUIPMENT_SUMMARY = "设备故障 {count} 起"
LATE_OTHER_SUMMARY = "补报其他情况/设备故障 {count} 起"
UNCONFIGURED_SITE = "未配置站点 {site}"
NONE_SEEN = "未见"
OBSERVED_BY_CAMERA = "摄像机 camera"
OBSERVED_BY_PATROL = "巡护 patrol"
CASE_MISSING = "异常情况 #{id} 缺少：{what}"
PHOTO_NOT_UPLOADED = "（未上传 not uploaded）"
PROVISIONAL = "临时报告：生成时时段尚未结束 / provisional: generated before the window closed"
LATE_SINCE_PREVIOUS = (
    "{day} 日报生成（{at}）后到达中心 / arrived after the {day} report was generated at {at}"
)
LATE_SINCE_WINDOW = (
    "无更早的日报记录，自上一截止时间加宽限期 {at} 起计 / "
    "no earlier report on file; counted from the previous cut-off plus the grace, {at}"
)

REPORT_TITLE = "{station}陆生野生动物疫源疫病监测日报 {day}"
REPORT_TITLE_EN = "Terrestrial wildlife epidemic-source and disease monitoring daily report"
REPORT_WINDOW = "{start} 至 {end}"

# Sections of a report (rule → section lives in central.reports.model), each also the title of
# its sheet.
SECTIONS_ZH: dict[str, str] = {
    "disease": "疫病异常",
    "other": "其他情况",
    "equipment": "设备故障",
}

SHEET_INFO = "报告信息"
SHEET_SUMMARY = "日报汇总"
SHEET_SPECIES = "物种统计"
SHEET_LATE = "补报（迟到数据）"
SHEET_ROSTER = "值班空缺"
ROSTER_HEADERS: list[tuple[str, int]] = [
    ("监测站 Station", 34),
    ("站点代码 Code", 14),
    ("无人值班起 No duty officer from", 24),
    ("至 Until", 24),
    ("时长（小时）Hours", 12),
]

INFO_HEADERS: list[tuple[str, int]] = [("项目 Item", 26), ("内容 Value", 80)]
INFO_TITLE = "标题 Title"
INFO_STATION = "监测站 Station"
INFO_STATION_CODE = "监测站代码 Station code"
INFO_DAY = "报告日期 Report day"
INFO_WINDOW = "时段 Window"
INFO_CUTOFF = "截止时间 Cut-off"
INFO_GENERATED = "生成时间 Generated at"
INFO_ABNORMAL = "是否发现疫病异常 Abnormal (wildlife epidemic)"
INFO_SUMMARY = "报告结论 Summary"
INFO_LATE_SINCE = "补报起算 Late additions counted from"
INFO_STATUS = "报告状态 Status"
INFO_FINAL = "正式报告（时段已结束）/ final (window closed)"

SUMMARY_HEADERS: list[tuple[str, int]] = [  # (header, column width)
    ("监测站 Station", 34),
    ("站点代码 Code", 14),
    ("纬度 Latitude", 12),
    ("经度 Longitude", 12),
    ("时段 Window", 36),
    ("是否异常（疫病）Abnormal", 14),
    ("疫病异常数 Epidemic", 12),
    ("其他情况数 Other", 12),
    ("设备故障数 Equipment", 12),
    ("补报数 Late", 10),
    ("观测事件数 Observation events", 14),
    ("物种/类别与数量 Species/Category counts", 60),
    ("报告 Summary", 30),
]

SPECIES_HEADERS: list[tuple[str, int]] = [
    ("监测站 Station", 34),
    ("站点代码 Code", 14),
    ("物种 Species", 20),
    ("学名 Scientific name", 28),
    ("累计数量 Count (sum over images)", 16),
    ("单张最多 Max in one image", 14),
    ("观测方式 How observed", 16),
    ("摄像机 Cameras", 24),
]

ANOMALY_HEADERS: list[tuple[str, int]] = [
    ("监测站 Station", 34),
    ("站点代码 Code", 14),
    ("纬度 Latitude", 12),
    ("经度 Longitude", 12),
    ("所属日报 Report day", 12),
    ("板块 Section", 12),
    ("发现时间 Time", 20),
    ("接收时间 Received", 20),
    ("摄像机 Camera", 14),
    ("节点 Node", 12),
    ("异常类型 Rule", 32),
    ("类别 Category", 10),
    ("物种 Species", 20),
    ("学名 Scientific name", 26),
    ("数量 Count", 8),
    ("级别 Severity", 10),
    ("审核 Review", 10),
    ("审核人 Reviewer", 12),
    ("审核时间 Reviewed at", 20),
    ("审核意见 Review note", 30),
    ("描述 Message", 50),
    ("照片 Photos", 40),
    ("事件编号 Event ID", 38),
]


def section_zh(section: str) -> str:
    """Chinese name of a report section (disease / other / equipment), also its sheet's title."""
    return SECTIONS_ZH.get(section, section)


def report_title(*, station: str, code: str, day: str) -> str:
    """'湖州市监测站（ZJ-HZ-001）陆生野生动物疫源疫病监测日报 2026-11-22'."""
    label = f"{station}（{code}）" if station and code else station or code
    return REPORT_TITLE.format(station=label, day=day)


def verdict(
    *, disease: int, late_disease: int, other: int, equipment: int, late_other: int, zero: str
) -> str:
    """'无异常…' (`zero`) unless a wildlife epidemic abnormality was found (counts include late
    additions), then the other sections: equipment faults never turn a day abnormal."""
    if disease == 0:
        parts = [zero]
    elif late_disease:
        parts = [DISEASE_SUMMARY_LATE.format(count=disease, late=late_disease)]
    else:
        parts = [DISEASE_SUMMARY.format(count=disease)]
    if other:
        parts.append(OTHER_SUMMARY.format(count=other))
    if equipment:
        parts.append(EQUIPMENT_SUMMARY.format(count=equipment))
    if late_other:
        parts.append(LATE_OTHER_SUMMARY.format(count=late_other))
    return "；".join(parts)


def review_zh(status: str) -> str:
    """Chinese name of a review status."""
    return REVIEW_STATUSES_ZH.get(status, status)


def short_time_zh(local: datetime) -> str:
    """'11月22日 02:13' for a local time."""
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def long_time(local: datetime) -> str:
    """'2026-11-22 02:13:05' for a local time."""
    return f"{local:%Y-%m-%d %H:%M:%S}"


def sms_alert(
    *,
    site_zh: str,
    camera: str,
    local_time: datetime,
    rule: str | None,
    category: str,
    species_zh: str | None,
    count: int,
    confidence: float,
    severity: str,
) -> str:
    """The SMS a duty officer gets for one anomaly."""
    return SMS_ALERT.format(
        severity_zh=severity_zh(severity),
        site_zh=site_zh,
        camera=camera,
        when=short_time_zh(local_time),
        rule_zh=rule_zh(rule),
        subject=species_zh or category_zh(category),
        count=f"×{count}",
        confidence=confidence,
    )


# -- Printed report (PDF) -------------------------------------------------------------------------
PDF_SUBJECT = "陆生野生动物疫源疫病监测日报 / wildlife epidemic-source monitoring daily report"
PDF_PAGE = "第 {page} 页 / 共 {{nb}} 页"
PDF_UNREVIEWED = "未经审核 / not reviewed"
PDF_REVIEWED = "已审核签发 / reviewed and signed"
PDF_SITE_HEADING = "{n}. {name}（{code}）"
PDF_OBSERVATIONS = "观测记录 {count} 条 / observation events"
PDF_NONE = "无 / none"
PDF_NO_WILDLIFE = "本时段未见野生动物记录 / no wildlife recorded in the window"
PDF_EVIDENCE = "疫病异常证据照片 / evidence photos"
PDF_PHOTO_MISSING = "照片未上传 / photo not uploaded"
PDF_SPECIES_HEADERS: list[tuple[str, int]] = [  # (header, width in mm)
    ("物种 Species", 34),
    ("学名 Scientific name", 42),
    ("累计数量 Count", 24),
    ("单张最多 MaxN", 24),
    ("观测方式 Method", 28),
    ("摄像机 Cameras", 28),
]
PDF_ANOMALY_HEADERS: list[tuple[str, int]] = [
    ("时间 Time", 22),
    ("相机 Camera", 22),
    ("类型 Rule", 26),
    ("物种 Species", 22),
    ("数量 No.", 13),
    ("等级 Level", 15),
    ("审核 Review", 18),
    ("说明 Description", 42),
]
PDF_ROSTER_HEADERS: list[tuple[str, int]] = [
    ("开始 From", 60),
    ("结束 To", 60),
    ("时长（小时）Hours", 30),
]
PDF_SIGN_REPORTER = "填报人 Reporter"
PDF_SIGN_PHONE = "联系电话 Phone"
PDF_SIGN_AUDITOR = "审核人 Auditor"
PDF_SIGN_TIME = "签发时间 Signed at"
PDF_SIGN_BLANK = "（未签发 not signed）"

# -- Report delivery (报送) ------------------------------------------------------------------------
DELIVERY_SUBJECT = "{unsigned}{name}陆生野生动物疫源疫病监测日报 {day}（{summary}）"
DELIVERY_UNSIGNED_TAG = "【未经审核】"
DELIVERY_BODY_HEAD = "{name} {day} 陆生野生动物疫源疫病监测日报，附 PDF、XLSX 与 JSON。"
DELIVERY_BODY_UNSIGNED = "审核状态：未经审核（截止时间前站长未签发，按规定按时自动报送）"
DELIVERY_BODY_FILES = "附件 Attachments (sha256):"
DELIVERY_BODY_KEY = "报送编号 Idempotency key"
EXPRESS_SUBJECT = "【快报】{name}陆生野生动物疫源疫病快报（{at} 确认）"
EXPRESS_BODY = (
    "{name}于 {at} 确认的异常情况快报（须于 {deadline} 前报送），附 PDF 与 JSON。"
    "后续情况将在日报中报告。"
)
SIGNED_TOO_LATE = (
    "该日报已于截止时间报送（未经审核），不能再签发 / the report went out unsigned at the cut-off"
)
DELIVERY_DRAFT = "{day}日报草稿已生成，请于{cutoff}前在控制台审核签发"
DELIVERY_UNSIGNED = "{day}日报未经站长审核，已按时自动报送并标注未经审核"
DELIVERY_MISSING = "{day}日报尚未送达省局（未上报），系统正在重试"
DELIVERY_OVERDUE = "{day}日报送达超时，请检查邮件/上报接口并人工报送"

# -- Cases and patrols in the report ---------------------------------------------------------------
SHEET_CASES = "异常情况"
SHEET_PATROLS = "巡护记录"
CASE_HEADERS: list[tuple[str, int]] = [
    ("监测站 Station", 30),
    ("编号 Case", 8),
    ("发现时间 Found at", 20),
    ("发现地点 Location", 20),
    ("物种 Species", 14),
    ("学名 Scientific name", 24),
    ("保护级别 Protection", 10),
    ("患病数 Sick", 8),
    ("死亡数 Dead", 8),
    ("同群数 Flock", 8),
    ("临床症状 Signs", 30),
    ("来源 Origin", 10),
    ("人员接触 Human contact", 20),
    ("3公里禽场 Poultry farms", 20),
    ("采样送检 Samples", 40),
    ("处置措施 Measures", 30),
    ("初步判断 Judgement", 40),
    ("待补充 Missing", 30),
    ("事件编号 Event id", 38),
]
PATROL_HEADERS: list[tuple[str, int]] = [
    ("监测站 Station", 30),
    ("开始 Start", 20),
    ("结束 End", 20),
    ("巡护人员 Observers", 20),
    ("路线 Route", 24),
    ("天气 Weather", 8),
    ("所见物种与数量 Seen", 40),
    ("说明 Notes", 40),
    ("照片 Photos", 8),
]
PDF_PATROL_HEADERS: list[tuple[str, int]] = [
    ("时间 Time", 30),
    ("人员 Observers", 28),
    ("路线 Route", 32),
    ("天气 Weather", 16),
    ("所见 Seen", 74),
]
YES_NO_UNKNOWN = {True: "有", False: "无", None: "未填写"}
NOT_RECORDED = "未填写"
SAMPLE_PENDING = "待检"

# -- labelled datasets (central/datasets.py) ------------------------------------------------------
DATASET_DESCRIPTION = (
    "{station} 人工审核标注数据集（已确认与已排除事件的证据图片），拍摄时间 {since} 至 {until}，"
    "站点 {sites} / {station} reviewed labels (confirmed and dismissed events' evidence frames) "
    "captured {since} to {until}, sites {sites}"
)
DATASET_BAD_WINDOW = "结束时间须晚于开始时间 / until must be after since"
DATASET_WINDOW_TOO_LONG = (
    "时间范围过长（最多 {days} 天），请分段导出 / "
    "window longer than {days} days: export it in parts"
)
