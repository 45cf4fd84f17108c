"""Aliyun (Alibaba Cloud) SMS through the official SDK, `alibabacloud-dysmsapi20170525`.

What Aliyun imposes, and how this module meets it:

- Only approved templates are sent: our template key (`OutgoingSms.template`) maps to an Aliyun
  TemplateCode in `AliyunSettings.templates`, the station's approved signature (短信签名) is
  `sign_name`, and `OutgoingSms.params` become the template's variables (TemplateParam, JSON).
- Variables are checked here before anything is sent, so a refused message costs no request and
  no quota: every value must be a non-empty string without a link (Aliyun refuses links in
  variables, isv.PARAM_NOT_SUPPORT_URL; links belong in the approved template text) and at most
  `max_param_chars` characters (35 for notification templates applied for since 2018-01-10,
  20 for older ones; isv.PARAM_LENGTH_LIMIT).
- Per-number caps: for notification templates Aliyun allows one number 50 messages a day per
  signature and template (a natural day, Beijing time) and answers isv.BUSINESS_LIMIT_CONTROL
  beyond that ("触发天级流控Permits:50"). `daily_cap_per_number` records that limit for the
  alerting core, which counts its own sends and fans escalation out to other people rather
  than hammer one number; when Aliyun refuses anyway the error is not retryable (the cap lasts
  until midnight, Beijing time).
- Sends are not idempotent: the SDK is built with no retry policy (one HTTP request per
  submit), and a read timeout after the request went out is reported as
  `ProviderError(retryable=True, uncertain=True)`, so the caller checks receipts (this
  module's `receipts`, matched by OutId = our reference) before sending again.
- Delivery receipts: pull with QuerySendDetails (`receipts`, `receipt_for`), push with the
  HTTP batch push callbacks SmsReport and SmsUp (`parse_report_callback`,
  `parse_reply_callback`), which must be answered with `CALLBACK_RESPONSE` and HTTP 200 within
  700 ms or Aliyun pushes again (duplicates are the caller's to tolerate). Aliyun documents no
  signature on these pushes, so the endpoint that receives them must be protected some other
  way (a secret path, an address allow-list).

What the SDK (4.x over alibabacloud-tea-openapi 0.4) sends: the RPC-style API as
`POST {protocol}://{endpoint}/?PhoneNumbers=..&SignName=..` with an empty body, the action and
version in `x-acs-action` / `x-acs-version` headers and an `Authorization:
ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=...,Signature=<hex>` header (V3
signature over method, path, sorted query, the signed headers and the body's SHA-256). The
endpoint is used verbatim as the Host, so "127.0.0.1:8080" with protocol "http" points the SDK
at a local server.

Times: Aliyun reports local time in Beijing (`SendDate`, `ReceiveDate`, `report_time`,
`send_time`, "yyyy-MM-dd HH:mm:ss"); they are returned as aware datetimes in Asia/Shanghai.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Literal
from zoneinfo import ZoneInfo

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi.exceptions import ServerException, ThrottlingException
from alibabacloud_tea_openapi.models import Config
from darabonba.exceptions import ResponseException
from darabonba.runtime import RuntimeOptions
from pydantic import BaseModel, ConfigDict, Field
from Tea.exceptions import TeaException
from urllib3.exceptions import ConnectTimeoutError, ReadTimeoutError

from central.alerts.providers import (
    DeliveryState,
    OutgoingSms,
    ProviderError,
    Receipt,
    Reply,
    Submitted,
    callback_items,
)

KEY = "aliyun"

BEIJING = ZoneInfo("Asia/Shanghai")

# The answer Aliyun's HTTP batch push (SmsReport, SmsUp) expects, with HTTP status 200, within
# 700 ms; anything else and it pushes again (after 1, 5 and 10 minutes, then gives up). Aliyun
# checks only that `code` is a number; "成功" is the text its FAQ shows ("接收成功" in the
# API pages), and a consumer that failed should answer 5xx instead.
CALLBACK_RESPONSE: dict[str, object] = {"code": 0, "msg": "成功"}
CALLBACK_RESPONSE_BODY = json.dumps(CALLBACK_RESPONSE, ensure_ascii=False).encode("utf-8")

# Aliyun's per-number limit for notification templates: 50 a day per signature + template.
DEFAULT_DAILY_CAP = 50
# Variable length for notification templates applied for since 2018-01-10 (20 before).
DEFAULT_MAX_PARAM_CHARS = 35
# QuerySendDetails keeps 30 days and pages by at most 50 rows.
QUERY_DAYS_KEPT = 30
QUERY_PAGE_SIZE = 50

_URL = re.compile(r"https?://|www\.", re.IGNORECASE)

# Refusals that sending again cannot cure (the message, the number or the account must change
# first). Any other `isv.` code is treated the same way; these are named for the reader.
NOT_RETRYABLE_CODES = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",  # per-number cap (daily for notifications)
        "isv.DAY_LIMIT_CONTROL",  # the account's own daily total
        "isv.MONTH_LIMIT_CONTROL",
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.PARAM_NOT_SUPPORT_URL",
        "isv.INVALID_JSON_PARAM",
        "isv.OUT_OF_SERVICE",  # account in arrears
        "isp.RAM_PERMISSION_DENY",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "IncompleteSignature",
    }
)
# Transient on Aliyun's side: the same request may be tried again.
RETRYABLE_CODES = frozenset({"isp.SYSTEM_ERROR", "InternalError", "ServiceUnavailable"})


def is_retryable_code(code: str, status: int = 200) -> bool:
    """Whether a request Aliyun refused with `code` (HTTP `status`) may be sent again later."""
    if code in NOT_RETRYABLE_CODES:
        return False
    if code in RETRYABLE_CODES or code.startswith("Throttling"):
        return True
    # 5xx and the platform's ("isp") other errors are transient; isv.* (the caller's request)
    # and other 4xx are not
    return status >= 500 or code.startswith("isp.")


class AliyunSettings(BaseModel):
    """How central reaches Aliyun SMS. The AccessKey secret is never in the config: only the
    name of the environment variable that holds it."""

    model_config = ConfigDict(extra="forbid")

    access_key_id: str = Field(min_length=1)
    access_key_secret_env: str = Field(
        default="ALIBABA_CLOUD_ACCESS_KEY_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"
    )
    sign_name: str = Field(min_length=1, description="approved signature (短信签名)")
    templates: dict[str, str] = Field(
        min_length=1, description="our template key -> Aliyun TemplateCode (SMS_...)"
    )
    endpoint: str = Field(default="dysmsapi.aliyuncs.com", min_length=1)
    protocol: Literal["https", "http"] = "https"  # http only for tests against a local server
    region: str = "cn-hangzhou"
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="connect and read timeout")
    daily_cap_per_number: int = Field(
        default=DEFAULT_DAILY_CAP,
        ge=1,
        description="Aliyun's limit per number, signature and notification template per day "
        "(Beijing time); the alerting core plans around it",
    )
    max_param_chars: int = Field(default=DEFAULT_MAX_PARAM_CHARS, ge=1, le=500)


class AliyunProvider:
    """SmsProvider for Aliyun SMS (key "aliyun")."""

    key = KEY

    def __init__(
        self,
        settings: AliyunSettings,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        secret = env.get(settings.access_key_secret_env, "")
        if not secret:
            raise ProviderError(
                f"Aliyun AccessKey secret not set: environment variable "
                f"{settings.access_key_secret_env} is empty or missing",
                code="MissingSecret",
                retryable=False,
            )
        self.settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        timeout_ms = max(1, round(settings.timeout_s * 1000))
        self._client: Any = Client(
            Config(
                access_key_id=settings.access_key_id,
                access_key_secret=secret,
                endpoint=settings.endpoint,
                protocol=settings.protocol,
                region_id=settings.region,
                connect_timeout=timeout_ms,
                read_timeout=timeout_ms,
            )
        )

    # -- sending ---------------------------------------------------------------------------

    def template_code(self, template: str) -> str:
        """The Aliyun TemplateCode for our template key; ProviderError when none is set."""
        try:
            return self.settings.templates[template]
        except KeyError:
            raise ProviderError(
                f"no Aliyun template configured for {template!r} "
                f"(known: {', '.join(sorted(self.settings.templates))})",
                code="UnknownTemplate",
                retryable=False,
            ) from None

    def check_params(self, params: Mapping[str, str]) -> None:
        """Refuse variables Aliyun would refuse (links, over-long or empty values)."""
        limit = self.settings.max_param_chars
        for name, value in params.items():
            if not isinstance(value, str):
                raise ProviderError(
                    f"template variable {name!r} must be a string, not {type(value).__name__}",
                    code="isv.INVALID_JSON_PARAM",
                    retryable=False,
                )
            if not value:
                raise ProviderError(
                    f"template variable {name!r} is empty (Aliyun refuses empty variables)",
                    code="isv.TEMPLATE_MISSING_PARAMETERS",
                    retryable=False,
                )
            if _URL.search(value):
                raise ProviderError(
                    f"template variable {name!r} contains a link; Aliyun refuses links in "
                    "variables (put fixed links in the approved template text)",
                    code="isv.PARAM_NOT_SUPPORT_URL",
                    retryable=False,
                )
            if len(value) > limit:
                raise ProviderError(
                    f"template variable {name!r} has {len(value)} characters; "
                    f"Aliyun allows {limit}",
                    code="isv.PARAM_LENGTH_LIMIT",
                    retryable=False,
                )

    def submit(self, sms: OutgoingSms) -> Submitted:
        """SendSms for one number; the returned message_id is Aliyun's BizId."""
        template_code = self.template_code(sms.template)
        self.check_params(sms.params)
        request = sms_models.SendSmsRequest(
            phone_numbers=sms.phone,
            sign_name=self.settings.sign_name,
            template_code=template_code,
            template_param=json.dumps(dict(sms.params), ensure_ascii=False),
            out_id=sms.reference or None,
        )
        body = self._call("SendSms", partial(self._client.send_sms_with_options, request, _once()))
        code = _text(body.code)
        if code != "OK":
            raise ProviderError(
                f"Aliyun SendSms refused: {code} {_text(body.message)}",
                code=code,
                retryable=is_retryable_code(code),
            )
        biz_id = _text(body.biz_id)
        if not biz_id:  # accepted without an id: it may go out, but cannot be matched by BizId
            raise ProviderError(
                "Aliyun SendSms answered OK without a BizId",
                code=code,
                retryable=True,
                uncertain=True,
            )
        return Submitted(provider=KEY, message_id=biz_id)

    # -- receipts (pull) ---------------------------------------------------------------------

    def receipts(self, *, since: datetime, phones: list[str]) -> list[Receipt]:
        """QuerySendDetails for each number and each Beijing day from `since` to today (Aliyun
        keeps 30 days). Rows carry no BizId, so `message_id` is "" and `reference` (OutId) is
        what matches them to our messages; `receipt_for` queries one BizId instead."""
        since_bj = _aware(since).astimezone(BEIJING)
        today = self._clock().astimezone(BEIJING).date()
        first = max(since_bj.date(), today - timedelta(days=QUERY_DAYS_KEPT - 1))
        out: list[Receipt] = []
        for phone in dict.fromkeys(phones):
            day = first
            while day <= today:
                for row in self._query_rows(phone, day):
                    sent = _parse_local(_text(row.send_date))
                    if sent is not None and sent < since_bj:
                        continue
                    out.append(_row_receipt(row, message_id=""))
                day += timedelta(days=1)
        return out

    def receipt_for(self, message_id: str, *, phone: str, sent_at: datetime) -> Receipt | None:
        """The state of one message by its BizId (QuerySendDetails filtered by BizId); None
        when Aliyun has no row for it (yet)."""
        day = _aware(sent_at).astimezone(BEIJING).date()
        for row in self._query_rows(phone, day, biz_id=message_id):
            return _row_receipt(row, message_id=message_id)
        return None

    def _query_rows(self, phone: str, day: date, biz_id: str | None = None) -> Iterator[Any]:
        page = 1
        seen = 0
        while True:
            request = sms_models.QuerySendDetailsRequest(
                phone_number=phone,
                send_date=day.strftime("%Y%m%d"),
                page_size=QUERY_PAGE_SIZE,
                current_page=page,
                biz_id=biz_id,
            )
            body = self._call(
                "QuerySendDetails",
                partial(self._client.query_send_details_with_options, request, _once()),
            )
            code = _text(body.code)
            if code != "OK":
                raise ProviderError(
                    f"Aliyun QuerySendDetails refused: {code} {_text(body.message)}",
                    code=code,
                    retryable=is_retryable_code(code),
                )
            dtos = body.sms_send_detail_dtos
            rows = list(dtos.sms_send_detail_dto or []) if dtos is not None else []
            yield from rows
            seen += len(rows)
            total = int(_text(body.total_count) or 0)
            if not rows or len(rows) < QUERY_PAGE_SIZE or seen >= total:
                return
            page += 1

    # -- the SDK call, with its failures mapped --------------------------------------------

    def _call(self, action: str, call: Callable[[], Any]) -> Any:
        try:
            response = call()
        except ResponseException as exc:  # Aliyun answered with an HTTP error
            status = int(getattr(exc, "status_code", 0) or 0)
            code = _text(getattr(exc, "code", ""))
            if code in ("", "None"):  # the SDK formats a missing Code as "None"
                code = f"HTTP{status}"
            retryable = isinstance(exc, (ServerException, ThrottlingException)) or (
                is_retryable_code(code, status)
            )
            raise ProviderError(
                f"Aliyun {action} failed: HTTP {status} {code}: {_text(exc.message)}",
                code=code,
                retryable=retryable,
            ) from exc
        except TeaException as exc:  # no answer: connection refused, timeout, reset
            raise _transport_error(action, self.settings.endpoint, exc) from exc
        return response.body


def _once() -> Any:
    """Runtime options for one attempt. The SDK retries only by the Config's `retry_options`,
    which this module leaves unset, so each call is exactly one HTTP request (sends are not
    idempotent); autoretry=False says the same for SDK versions that read the runtime."""
    return RuntimeOptions(autoretry=False, max_attempts=1)


def _transport_error(action: str, endpoint: str, exc: BaseException) -> ProviderError:
    """Classify a request that got no answer. Only a connection that was never opened proves
    that Aliyun did not get the request; a read timeout or a reset may come after it did."""
    causes = list(_causes(exc))
    detail = str(exc) or type(exc).__name__
    if any(isinstance(c, ReadTimeoutError) for c in causes):
        return ProviderError(
            f"Aliyun {action} timed out waiting for the answer (the request was sent): {detail}",
            code="Timeout",
            retryable=True,
            uncertain=True,
        )
    if any(isinstance(c, ConnectTimeoutError) for c in causes):  # incl. NewConnectionError
        return ProviderError(
            f"Aliyun {action}: cannot connect to {endpoint}: {detail}",
            code="ConnectError",
            retryable=True,
        )
    return ProviderError(
        f"Aliyun {action} failed without an answer: {detail}",
        code="NoAnswer",
        retryable=True,
        uncertain=True,
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps: the SDK keeps the requests/urllib3 error in
    `inner_exception` and the exception context; urllib3 keeps the root in `reason`."""
    todo: list[object] = [exc]
    seen: set[int] = set()
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend(
            [
                getattr(item, "inner_exception", None),
                getattr(item, "reason", None),
                item.__cause__,
                item.__context__,
                *item.args,
            ]
        )


# -- push callbacks --------------------------------------------------------------------------


def parse_report_callback(body: bytes) -> list[Receipt]:
    """Receipts from Aliyun's SmsReport HTTP push: a JSON array of
    {phone_number, send_time, report_time, success, err_code, err_msg, sms_size, biz_id, out_id}.
    ValueError when the body is not such an array."""
    receipts: list[Receipt] = []
    for item in callback_items(body, "Aliyun SmsReport"):
        biz_id = _field(item, "biz_id")
        if not biz_id:
            raise ValueError(f"SmsReport item without biz_id: {item!r}")
        success = item.get("success")
        delivered = success is True or (isinstance(success, str) and success.lower() == "true")
        receipts.append(
            Receipt(
                provider=KEY,
                message_id=biz_id,
                phone=_field(item, "phone_number"),
                state=DeliveryState.DELIVERED if delivered else DeliveryState.FAILED,
                code=_field(item, "err_code"),
                at=_parse_local(_field(item, "report_time")),
                reference=_field(item, "out_id"),
            )
        )
    return receipts


def parse_reply_callback(body: bytes) -> list[Reply]:
    """Replies from Aliyun's SmsUp HTTP push: a JSON array of
    {phone_number, send_time, content, sign_name, dest_code, sequence_id}.
    ValueError when the body is not such an array."""
    replies: list[Reply] = []
    for item in callback_items(body, "Aliyun SmsUp"):
        phone = _field(item, "phone_number")
        if not phone:
            raise ValueError(f"SmsUp item without phone_number: {item!r}")
        extra = {
            name: _field(item, name)
            for name in ("sign_name", "dest_code", "sequence_id")
            if item.get(name) is not None
        }
        replies.append(
            Reply(
                provider=KEY,
                phone=phone,
                text=_field(item, "content"),
                at=_parse_local(_field(item, "send_time")),
                extra=extra,
            )
        )
    return replies


def _field(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():  # sequence_id arrives as a number
        return str(int(value))
    return str(value)


# -- helpers ---------------------------------------------------------------------------------


def _row_receipt(row: Any, *, message_id: str) -> Receipt:
    status = int(_text(row.send_status) or 1)
    state = {2: DeliveryState.FAILED, 3: DeliveryState.DELIVERED}.get(
        status, DeliveryState.SUBMITTED
    )
    return Receipt(
        provider=KEY,
        message_id=message_id,
        phone=_text(row.phone_num),
        state=state,
        code=_text(row.err_code),
        at=_parse_local(_text(row.receive_date)) if state is not DeliveryState.SUBMITTED else None,
        reference=_text(row.out_id),
    )


def _parse_local(text: str) -> datetime | None:
    """Aliyun's Beijing-time stamps: "2017-06-01 10:00:05" (or "20150101120000" in the
    oldest SmsUp pages)."""
    text = text.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=BEIJING)
        except ValueError:
            continue
    return None


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (as the database keeps them)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _text(value: object) -> str:
    return "" if value is None else str(value)


__all__ = [
    "BEIJING",
    "CALLBACK_RESPONSE",
    "CALLBACK_RESPONSE_BODY",
    "KEY",
    "AliyunProvider",
    "AliyunSettings",
    "is_retryable_code",
    "parse_reply_callback",
    "parse_report_callback",
]
