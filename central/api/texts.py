"""API error texts added with staff authentication and input bounds, Chinese first.

They belong in central/messages.py (the one catalogue); they wait here until its owner moves them.
"""

from __future__ import annotations

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
