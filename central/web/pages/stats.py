"""统计 charts: the last 30 days per species and per site, anomalies per rule, the review
backlog; drawn by Apache ECharts, served by central (static/vendor/echarts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from central.api.deps import ConfigDep, SessionDep
from central.web import labels, queries
from central.web.deps import AccountDep, render

router = APIRouter()
DAYS = 30


@router.get("/stats")
def stats_page(
    request: Request, session: SessionDep, config: ConfigDep, account: AccountDep
) -> Response:
    data = queries.daily_stats(
        session=session,
        scope=account.scope,
        now=datetime.now(UTC),
        days=DAYS,
        timezone=config.timezone,
    )
    data["rules"] = {labels.rule(k): v for k, v in data["rules"].items()}
    data["sites"] = {
        config.sites[k].name_zh if k in config.sites else k: v for k, v in data["sites"].items()
    }
    # no "<", ">" or "&" in the <script> block the data sits in: a species name from a node
    # can then neither end it nor switch the HTML parser's script state ("<!--<script")
    payload = (
        json.dumps(data, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    response: Response = render(
        request,
        "stats.html",
        config,
        account,
        page="stats",
        data=payload,
        days=DAYS,
        totals=data["totals"],
    )
    return response
