"""Tencent Cloud SMS (腾讯云短信) through the official SDK, API version 2021-01-11.

Sending: SendSms to one number with an approved template (TemplateId), the station's signature
(SignName) and the template's variables in order (TemplateParamSet); our reference travels as
SessionContext and comes back in pulled receipts. Tencent answers per number in SendStatusSet
("Ok" or an error code such as LimitExceeded.PhoneNumberThirtySecondLimit); request-level
failures (authentication, throttling, internal errors) come back as an Error that the SDK raises
as TencentCloudSDKException. The SDK signs every request with TC3-HMAC-SHA256 and never retries
on its own (sends are not idempotent: a timeout after sending is reported as uncertain).

Receipts: pulled with PullSmsSendStatusByPhoneNumber (one number, from a start time) or
PullSmsSendStatus (a queue: each report is handed out once, needs enabling by Tencent support),
or pushed to central: `parse_status_callback` and `parse_reply_callback` read Tencent's push
bodies, and central answers with `CALLBACK_RESPONSE`.

Formats (Tencent docs, "SMS callback APIs"):
- status report push (https://cloud.tencent.com/document/product/382/5807, also
  https://www.tencentcloud.com/document/product/382/43547): a JSON array of
  {"user_receive_time": "2015-10-17 08:03:04", "nationcode": "86", "mobile": "13xxxxxxxxx",
  "report_status": "SUCCESS" | "FAIL", "errmsg": "DELIVRD", "description": "...",
  "sid": "<SerialNo of SendSms>"}; one push may carry several reports.
- reply push (https://www.tencentcloud.com/document/product/382/43548): one JSON object
  {"extend": "", "mobile": "13xxxxxxxxx", "nationcode": "86", "sign": "...", "text": "...",
  "time": 1457336869} (time in Unix seconds).
- both expect the answer {"result": 0, "errmsg": "OK"}.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Final, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models
from tencentcloud.sms.v20210111.sms_client import SmsClient
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from central.alerts.providers import (
    DeliveryState,
    OutgoingSms,
    ProviderError,
    Receipt,
    Reply,
    Submitted,
    callback_items,
)

KEY: Final = "tencent"

# What central answers to both of Tencent's push callbacks (documented response body).
CALLBACK_RESPONSE: Final[Mapping[str, object]] = MappingProxyType({"result": 0, "errmsg": "OK"})

# Tencent reports wall-clock times ("2015-10-17 08:03:04") without a zone; they are Beijing time.
BEIJING: Final = timezone(timedelta(hours=8), "Asia/Shanghai")

# Variable rules from Tencent's body template review standards (正文模板审核标准,
# https://cloud.tencent.com/document/product/382/39023, English
# https://www.tencentcloud.com/document/product/382/40659): a template variable may not be a link
# (short links included), 【】 are not allowed (they are taken for a signature), each variable of
# a template created by an individually verified account takes at most 12 characters (enterprise
# accounts have no per-variable limit; verification-code variables are 0-6 digits), and the whole
# message, signature and variable values included, is at most 500 characters.
DOCUMENTED_PARAM_MAX_CHARS: Final = 12
DOCUMENTED_MESSAGE_MAX_CHARS: Final = 500
SESSION_CONTEXT_MAX_BYTES: Final = 512  # SendSms: "长度需小于512字节"
# A scheme, "www." or a host name ending in a common top-level domain; ASCII boundaries, since
# Chinese text runs straight into a link ("详见t.cn/A6x2").
_URL = re.compile(
    r"[a-z][a-z0-9+.-]*://"
    r"|(?<![a-z0-9])www\."
    r"|(?<![a-z0-9.-])[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|cn|net|org|gov|edu|info|top|xyz|cc|me"
    r"|io|co|ly|gl|tv|vip|shop|site|link|club|online|wang|ren|mobi|biz)(?![a-z0-9])",
    re.IGNORECASE,
)
_BRACKETS = ("【", "】")


class TencentSettings(BaseModel):
    """One Tencent Cloud SMS application (SdkAppId) and the templates approved for it."""

    model_config = ConfigDict(extra="forbid")

    secret_id: str = Field(min_length=1)
    # Name of the environment variable holding the SecretKey; the key never sits in config.
    secret_key_env: str = Field(default="TENCENTCLOUD_SECRET_KEY", min_length=1)
    sdk_app_id: str = Field(min_length=1)  # e.g. "1400006666"
    sign_name: str = Field(min_length=1)  # the approved signature's text, e.g. "野保监测"
    templates: dict[str, str]  # our template key ("alert") -> approved TemplateId ("449739")
    # Each template's variable names in the template's order ({1}, {2}, ...); the names are the
    # keys of OutgoingSms.params.
    template_params: dict[str, list[str]]
    region: str = "ap-guangzhou"
    endpoint: str = "sms.tencentcloudapi.com"  # host[:port]; tests point it at a local server
    scheme: Literal["https", "http"] = "https"  # http only for local test servers
    timeout_s: float = Field(default=10.0, gt=0)
    # Tencent's default frequency caps per number (FAQ "短信默认的频率限制",
    # https://cloud.tencent.com/document/faq/382/13303): the same content at most once per 30 s
    # and 10 messages per calendar day. Enterprise accounts change them in the console; set the
    # account's values here so the alerting core can tell when a message would pass a cap.
    # (Tencent enforces them either way and answers LimitExceeded.PhoneNumber*Limit.)
    same_content_interval_s: int = Field(default=30, ge=0)
    daily_limit_per_number: int = Field(default=10, ge=1)
    param_max_chars: int = Field(default=DOCUMENTED_PARAM_MAX_CHARS, ge=1)
    pull_limit: int = Field(default=100, ge=1, le=100)  # Tencent's maximum per pull

    @model_validator(mode="after")
    def _templates_have_params(self) -> TencentSettings:
        missing = sorted(set(self.templates) - set(self.template_params))
        if missing:
            raise ValueError(f"template_params has no entry for templates {missing}")
        unknown = sorted(set(self.template_params) - set(self.templates))
        if unknown:
            raise ValueError(f"template_params names templates not in templates: {unknown}")
        for key, names in self.template_params.items():
            if len(set(names)) != len(names):
                raise ValueError(f"template {key!r} repeats a variable name: {names}")
        return self


def e164(phone: str) -> str:
    """A mainland number in E.164 ("+8613800138000") from the forms people write; other numbers
    must already carry their country code ("+..." or "00...")."""
    digits = re.sub(r"[\s()-]", "", phone)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if digits.startswith("+"):
        body = digits[1:]
    elif len(digits) == 13 and digits.startswith("861"):
        body = digits
    elif len(digits) == 11 and digits.startswith("1"):
        body = "86" + digits
    else:
        body = ""
    if not body.isdigit() or not 8 <= len(body) <= 15:
        raise ProviderError(
            f"not a phone number Tencent accepts: {phone!r}",
            code="InvalidParameterValue.IncorrectPhoneNumber",
            retryable=False,
        )
    return "+" + body


class TencentProvider:
    """SmsProvider for Tencent Cloud SMS (key "tencent")."""

    key: str = KEY

    def __init__(
        self,
        settings: TencentSettings,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        secret_key = env.get(settings.secret_key_env, "")
        if not secret_key.strip():
            raise ValueError(
                f"Tencent SMS: environment variable {settings.secret_key_env} holds no SecretKey"
            )
        self.settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        http = HttpProfile(
            protocol=settings.scheme,
            endpoint=settings.endpoint,
            reqMethod="POST",
            reqTimeout=settings.timeout_s,
        )
        # TC3-HMAC-SHA256 signing; no region breaker (it would switch to another endpoint) and
        # no SDK retryer (a send must not be repeated behind our back).
        profile = ClientProfile(
            signMethod="TC3-HMAC-SHA256", httpProfile=http, disable_region_breaker=True
        )
        self._client = SmsClient(
            Credential(settings.secret_id, secret_key), settings.region, profile
        )

    # -- sending ------------------------------------------------------------------------------

    def template_values(self, sms: OutgoingSms) -> list[str]:
        """The TemplateParamSet for `sms`, checked against Tencent's variable rules; raises
        ProviderError (not retryable) for anything Tencent would refuse, so it is never sent."""
        names = self.settings.template_params.get(sms.template)
        if names is None or sms.template not in self.settings.templates:
            raise ProviderError(
                f"no Tencent template configured for {sms.template!r}",
                code="FailedOperation.TemplateIdNotExist",
                retryable=False,
            )
        missing = [name for name in names if name not in sms.params]
        if missing:
            raise ProviderError(
                f"template {sms.template!r} needs variables {missing}; not sent",
                code="FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                retryable=False,
            )
        values = [str(sms.params[name]) for name in names]  # extra params are other providers'
        for name, value in zip(names, values, strict=True):
            if _URL.search(value):
                raise ProviderError(
                    f"variable {name!r} of {sms.template!r} contains a link: {value!r}; not sent",
                    code="InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
                    retryable=False,
                )
            if any(bracket in value for bracket in _BRACKETS):
                raise ProviderError(
                    f"variable {name!r} contains 【】 (read as a signature): {value!r}; not sent",
                    code="InvalidParameterValue.TemplateParameterFormatError",
                    retryable=False,
                )
            if len(value) > self.settings.param_max_chars:
                raise ProviderError(
                    f"variable {name!r} of {sms.template!r} has {len(value)} characters, more than"
                    f" {self.settings.param_max_chars}: {value!r}; not sent",
                    code="InvalidParameterValue.TemplateParameterLengthLimit",
                    retryable=False,
                )
        if len(sms.reference.encode("utf-8")) >= SESSION_CONTEXT_MAX_BYTES:
            raise ProviderError(
                f"reference of {len(sms.reference.encode())} bytes is too long for SessionContext"
                f" (less than {SESSION_CONTEXT_MAX_BYTES}); not sent",
                code="InvalidParameter",  # Tencent's generic code; it documents no specific one
                retryable=False,
            )
        total = len(self.settings.sign_name) + 2 + len(sms.text)  # 【sign】 + rendered text
        if total > DOCUMENTED_MESSAGE_MAX_CHARS:
            raise ProviderError(
                f"message of {total} characters with its signature, more than"
                f" {DOCUMENTED_MESSAGE_MAX_CHARS}; not sent",
                code="InvalidParameterValue.ContentLengthLimit",
                retryable=False,
            )
        return values

    def submit(self, sms: OutgoingSms) -> Submitted:
        """SendSms to one number; Submitted(message_id=SerialNo) or ProviderError."""
        values = self.template_values(sms)
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [e164(sms.phone)]
        request.SmsSdkAppId = self.settings.sdk_app_id
        request.SignName = self.settings.sign_name
        request.TemplateId = self.settings.templates[sms.template]
        request.TemplateParamSet = values
        request.SessionContext = sms.reference
        try:
            response = self._client.SendSms(request)
        except TencentCloudSDKException as exc:
            raise sdk_error(exc, sending=True) from exc
        statuses = list(response.SendStatusSet or [])
        if not statuses:  # an answer without a status: Tencent may or may not have sent it
            raise ProviderError(
                f"SendSms answered without a SendStatus (RequestId {response.RequestId})",
                code="EmptySendStatusSet",
                retryable=True,
                uncertain=True,
            )
        status = statuses[0]
        code = str(status.Code or "")
        if code == "Ok":
            return Submitted(provider=KEY, message_id=str(status.SerialNo))
        retryable, uncertain = classify(code)
        raise ProviderError(
            f"Tencent refused the SMS to {status.PhoneNumber}: {code} {status.Message}",
            code=code,
            retryable=retryable,
            uncertain=uncertain,
        )

    # -- receipts -----------------------------------------------------------------------------

    def receipts(self, *, since: datetime, phones: list[str]) -> list[Receipt]:
        """Delivery reports since `since`: per number with PullSmsSendStatusByPhoneNumber
        (Tencent keeps 7 days; older starts are clamped), or, with no numbers, the account's
        report queue with PullSmsSendStatus (each report is handed out once). At most
        `pull_limit` (100, Tencent's maximum) reports per number and call: Tencent documents no
        paging (Offset is fixed at 0), so the caller pulls again with a later `since`."""
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        now = self._clock()
        earliest = now - timedelta(days=7) + timedelta(minutes=1)
        begin = int(max(since, earliest).timestamp())
        found: list[Receipt] = []
        try:
            if not phones:
                queue = models.PullSmsSendStatusRequest()
                queue.Limit = self.settings.pull_limit
                queue.SmsSdkAppId = self.settings.sdk_app_id
                found.extend(_receipts(self._client.PullSmsSendStatus(queue)))
            for phone in phones:
                one = models.PullSmsSendStatusByPhoneNumberRequest()
                one.BeginTime = begin
                one.EndTime = int(now.timestamp())
                one.Offset = 0
                one.Limit = self.settings.pull_limit
                one.PhoneNumber = e164(phone)
                one.SmsSdkAppId = self.settings.sdk_app_id
                found.extend(_receipts(self._client.PullSmsSendStatusByPhoneNumber(one)))
        except TencentCloudSDKException as exc:
            raise sdk_error(exc, sending=False) from exc
        return found


def _receipts(response: Any) -> list[Receipt]:
    out: list[Receipt] = []
    for item in response.PullSmsSendStatusSet or []:
        state = _REPORT_STATES.get(str(item.ReportStatus or "").upper())
        if state is None:  # no report from the carrier yet
            continue
        at = None
        if item.UserReceiveTime:
            at = datetime.fromtimestamp(int(item.UserReceiveTime), UTC)
        phone = str(item.PhoneNumber or "")
        if not phone and item.SubscriberNumber:
            phone = f"+{item.CountryCode or '86'}{item.SubscriberNumber}"
        out.append(
            Receipt(
                provider=KEY,
                message_id=str(item.SerialNo or ""),
                phone=phone,
                state=state,
                code=str(item.Description or ""),
                at=at,
                reference=str(item.SessionContext or ""),
            )
        )
    return out


_REPORT_STATES: Final[Mapping[str, DeliveryState]] = MappingProxyType(
    {"SUCCESS": DeliveryState.DELIVERED, "FAIL": DeliveryState.FAILED}
)

# -- errors ---------------------------------------------------------------------------------

# Per-number send codes that mean "this message will not go today, whatever we do".
NUMBER_CAP_CODES: Final = frozenset(
    {
        "LimitExceeded.PhoneNumberThirtySecondLimit",
        "LimitExceeded.PhoneNumberOneHourLimit",
        "LimitExceeded.PhoneNumberDailyLimit",
        "LimitExceeded.PhoneNumberSameContentDailyLimit",
    }
)
# Internal errors after which Tencent may well have sent the message.
_UNCERTAIN_INTERNAL: Final = frozenset({"InternalError.Timeout", "InternalError.SendAndRecvFail"})
_RETRYABLE_CODES: Final = frozenset(
    {
        "ServerNetworkError",  # the SDK's name for an HTTP status other than 200 (5xx, gateways)
        "ClientNetworkError",  # the SDK's name for a failed HTTP exchange
        "LimitExceeded.GlobalSmsSendingRateLimit",  # account-wide rate, not a per-number cap
    }
)


def classify(code: str) -> tuple[bool, bool]:
    """(retryable, uncertain) for a Tencent error code: internal errors, throttling and network
    failures may be retried; caps, refused templates or signatures, invalid numbers and
    authentication failures may not."""
    if code.startswith("InternalError"):
        return True, code in _UNCERTAIN_INTERNAL
    if code.startswith("RequestLimitExceeded") or code in _RETRYABLE_CODES:
        return True, False
    return False, False


def sdk_error(exc: TencentCloudSDKException, *, sending: bool) -> ProviderError:
    """ProviderError for an SDK exception. The SDK wraps every transport failure as
    ClientNetworkError (and failures while reading a started response under the Python
    exception's name), keeping the original as __context__: a send is uncertain unless the
    request provably never left (no connection, connect timeout)."""
    code = str(exc.code or "")
    raw = exc.message
    message = raw.decode("utf-8", "replace")[:300] if isinstance(raw, bytes) else str(raw)
    retryable, uncertain = classify(code)
    cause = _transport_cause(exc)
    if cause is not None:
        retryable = True
        uncertain = sending and not _never_sent(cause)
        code = code or type(cause).__name__
    elif code in {"JSONDecodeError", "KeyError", "TypeError", "ValueError"}:
        retryable, uncertain = True, sending  # a garbled answer: the request did arrive
    return ProviderError(
        f"Tencent SMS {code}: {message} (RequestId {exc.requestId})",
        code=code,
        retryable=retryable,
        uncertain=uncertain,
    )


def _transport_cause(exc: BaseException) -> requests.RequestException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.RequestException):
            return current
        current = current.__cause__ or current.__context__
    return None


def _never_sent(cause: requests.RequestException) -> bool:
    if isinstance(cause, requests.ConnectTimeout | requests.exceptions.SSLError):
        return True
    if isinstance(cause, requests.ConnectionError):
        reason: object = cause.args[0] if cause.args else None
        reason = getattr(reason, "reason", reason)  # urllib3 MaxRetryError -> its reason
        return isinstance(reason, NewConnectionError | ConnectTimeoutError)
    return False


# -- push callbacks -------------------------------------------------------------------------


def parse_status_callback(body: bytes) -> list[Receipt]:
    """Receipts from Tencent's status report push (a JSON array; one object is accepted too).
    Raises ValueError for a body that is not that format. Duplicates are kept: Tencent may push
    a report again, and the caller ignores what it already knows."""
    items = callback_items(body, "Tencent status report")
    out: list[Receipt] = []
    for item in items:
        status = str(item.get("report_status", "")).upper()
        state = _REPORT_STATES.get(status)
        sid = str(item.get("sid", ""))
        if state is None or not sid:
            raise ValueError(f"Tencent status report without sid or report_status: {item}")
        out.append(
            Receipt(
                provider=KEY,
                message_id=sid,
                phone=_callback_phone(item),
                state=state,
                code=str(item.get("errmsg") or item.get("description") or ""),
                at=_beijing_time(item.get("user_receive_time")),
            )
        )
    return out


def parse_reply_callback(body: bytes) -> list[Reply]:
    """Replies from Tencent's reply (uplink) push: one JSON object per push (an array is
    accepted too). Raises ValueError for a body that is not that format."""
    items = callback_items(body, "Tencent reply")
    out: list[Reply] = []
    for item in items:
        if "text" not in item or not item.get("mobile"):
            raise ValueError(f"Tencent reply without mobile or text: {item}")
        at = None
        raw_time = item.get("time")
        if isinstance(raw_time, int | float | str) and str(raw_time).strip():
            try:
                at = datetime.fromtimestamp(int(raw_time), UTC)
            except ValueError as exc:
                raise ValueError(f"Tencent reply with a bad time: {raw_time!r}") from exc
        extra = {key: str(item[key]) for key in ("sign", "extend", "nationcode") if item.get(key)}
        out.append(
            Reply(
                provider=KEY,
                phone=_callback_phone(item),
                text=str(item["text"]).strip(),
                at=at,
                extra=extra,
            )
        )
    return out


def _callback_phone(item: Mapping[str, Any]) -> str:
    mobile = str(item.get("mobile", "")).strip()
    nation = str(item.get("nationcode", "") or "86").strip().lstrip("+")
    if mobile.startswith("+"):
        return mobile
    return f"+{nation}{mobile}" if mobile else ""


def _beijing_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        local = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise ValueError(f"Tencent time not as documented: {value!r}") from exc
    return local.replace(tzinfo=BEIJING).astimezone(UTC)


__all__ = [
    "BEIJING",
    "CALLBACK_RESPONSE",
    "KEY",
    "NUMBER_CAP_CODES",
    "TencentProvider",
    "TencentSettings",
    "classify",
    "e164",
    "parse_reply_callback",
    "parse_status_callback",
    "sdk_error",
]
