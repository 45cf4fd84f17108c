"""Provider callbacks for duty alerting: delivery receipts and the duty officers' SMS replies.

Aliyun and Tencent push JSON to a URL the station registers with them and sign nothing, so the
URL carries a secret (`alerts.callback_token_env`): /api/sms/<provider>/<secret>/report|reply.
Duplicates are harmless (a receipt never undoes a delivery; an acknowledgement takes an alert
once). The answer is the body each provider documents as "received".
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from central.alerts.pager import Pager
from central.alerts.providers import Receipt, Reply
from central.api.deps import ConfigDep

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/sms", tags=["sms"])

Kind = Literal["report", "reply"]
MAX_BODY = 1 << 20  # a push carries at most a few hundred reports
_SECRET_IN_PATH = re.compile(r"(/api/sms/[^/\s]+/)[^/\s]+")


class RedactCallbackSecret(logging.Filter):
    """Keeps the callbacks' secret path part out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_IN_PATH.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCallbackSecret) for f in access.filters):
        access.addFilter(RedactCallbackSecret())


Parsers = tuple[
    Callable[[bytes], list[Receipt]], Callable[[bytes], list[Reply]], Mapping[str, object]
]


def _parsers(provider: str) -> Parsers:
    """(receipt parser, reply parser, the answer it documents) of a provider."""
    if provider == "aliyun":
        from central.alerts import aliyun

        return (
            aliyun.parse_report_callback,
            aliyun.parse_reply_callback,
            aliyun.CALLBACK_RESPONSE,
        )
    if provider == "tencent":
        from central.alerts import tencent

        return (
            tencent.parse_status_callback,
            tencent.parse_reply_callback,
            tencent.CALLBACK_RESPONSE,
        )
    raise HTTPException(status_code=404)


@router.post("/{provider}/{token}/{kind}", include_in_schema=False)
async def callback(
    request: Request, config: ConfigDep, provider: str, token: str, kind: Kind
) -> JSONResponse:
    secret_env = config.alerts.callback_token_env
    secret = os.environ.get(secret_env, "") if secret_env else ""
    if not secret or not hmac.compare_digest(token.encode(), secret.encode()):
        raise HTTPException(status_code=404)  # a wrong secret looks like no endpoint at all
    pager: Pager | None = request.app.state.pager
    if pager is None:
        raise HTTPException(status_code=503, detail="告警升级未启用 escalation is not configured")
    parse_report, parse_reply, answer = _parsers(provider)
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise HTTPException(status_code=413)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(status_code=413)
    now = datetime.now(UTC)

    def handle() -> None:  # database work off the event loop
        if kind == "report":
            receipts = parse_report(body)
            matched = sum(pager.on_receipt(r, now) for r in receipts)
            log.info("%s receipts: %d, %d matched", provider, len(receipts), matched)
        else:
            for reply in parse_reply(body):
                pager.on_reply(reply, now)

    try:
        await run_in_threadpool(handle)
    except ValueError as exc:
        log.warning("%s %s callback refused: %s", provider, kind, exc)
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return JSONResponse(dict(answer))
