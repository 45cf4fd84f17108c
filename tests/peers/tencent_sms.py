"""Tencent Cloud SMS on loopback: the API 3.0 endpoint as the official SDK talks to it.

A real HTTP server (ThreadingHTTPServer on 127.0.0.1, a free port) that takes the SDK's POSTs
(JSON body; X-TC-Action, X-TC-Version, X-TC-Timestamp, X-TC-Region headers; Authorization
TC3-HMAC-SHA256), verifies the signature with the test SecretKey exactly as Tencent documents it
and answers in Tencent's envelope ({"Response": {..., "RequestId": ...}}). Implemented actions:
SendSms, PullSmsSendStatus, PullSmsSendStatusByPhoneNumber (version 2021-01-11).

Faults and rules, all driven by the test:
- `fail_next(n, code=..., http_status=...)`: the next n calls answer an API error (InternalError,
  RequestLimitExceeded, ...) or a bare HTTP error page (500, 502, ...);
- `hold_next(n, seconds)`: the next n calls are processed (a send really happens) and their
  answer is held back up to `seconds` or until `release()`, so the client times out;
- Tencent's default per-number caps, on an injectable clock (no real time): the same content at
  most once per 30 s (LimitExceeded.PhoneNumberThirtySecondLimit) and 10 a calendar day, Beijing
  time (LimitExceeded.PhoneNumberDailyLimit);
- `mark_delivered(serial)` / `mark_failed(serial, errmsg)`: the carrier's report arrives; it is
  then pullable and can be pushed with `post_status_callback(url, ...)`;
- `post_reply_callback(url, phone, text)`: a duty officer answers the SMS.

    with TencentSmsServer(secret_key="test-key", templates={"449739": 3}) as server:
        HttpProfile(protocol="http", endpoint=server.endpoint)   # what the SDK is pointed at
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "2021-01-11"
SERVICE = "sms"
BEIJING = timezone(timedelta(hours=8))
SIGNATURE_MAX_AGE_S = 300  # Tencent refuses requests signed more than 5 minutes away from now
_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[^/]+)"
    r"/tc3_request, SignedHeaders=(?P<headers>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$"
)
_URL = re.compile(r"://|www\.|\.(?:com|cn|net|org)\b", re.IGNORECASE)


@dataclass
class SeenRequest:
    """One API call as the server received it."""

    action: str
    version: str
    region: str
    timestamp: int
    headers: dict[str, str]
    body: dict[str, Any]
    signature_ok: bool
    error: str = ""  # the request-level error code answered, "" when none


@dataclass
class SentSms:
    """A message Tencent took (a SerialNo was issued), and what the carrier reported."""

    serial_no: str
    phone: str  # E.164
    sdk_app_id: str
    sign_name: str
    template_id: str
    params: list[str]
    session_context: str
    sent_at: float
    report_status: str = ""  # "", "SUCCESS" or "FAIL"
    errmsg: str = ""  # the carrier's status code: DELIVRD, UNDELIV, MK:0001, ...
    description: str = ""
    received_at: float | None = None
    pulled: bool = False  # PullSmsSendStatus hands each report out once


@dataclass
class _Fault:
    code: str
    http_status: int


@dataclass
class _State:
    faults: list[_Fault] = field(default_factory=list)
    holds: list[float] = field(default_factory=list)


class ApiError(Exception):
    """A request-level error answered in Tencent's envelope."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def tc3_signature(
    secret_key: str,
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    payload: bytes | str,
    timestamp: int,
    service: str = SERVICE,
) -> str:
    """The TC3-HMAC-SHA256 signature of a request (Tencent Cloud API 3.0 signature v3):
    canonical request -> string to sign -> HMAC chain TC3<key> / date / service / tc3_request."""
    lower = {k.lower(): v for k, v in headers.items()}
    canonical_headers = "".join(
        f"{name}:{lower.get(name, '').strip().lower()}\n" for name in signed_headers
    )
    body = payload.encode() if isinstance(payload, str) else payload
    payload_hash = hashlib.sha256(body).hexdigest()
    canonical_request = "\n".join(
        [method, path, query, canonical_headers, ";".join(signed_headers), payload_hash]
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )

    def _hmac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    signing_key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


class TencentSmsServer:
    """The fake Tencent SMS endpoint; see the module docstring."""

    def __init__(
        self,
        *,
        secret_id: str = "AKIDwildwatchTEST",
        secret_key: str = "wildwatch-test-secret-key",
        sdk_app_id: str = "1400000001",
        sign_names: Iterable[str] = ("野保监测",),
        templates: Mapping[str, int] | None = None,
        clock: Callable[[], float] | None = None,
        same_content_interval_s: float = 30.0,
        daily_limit: int = 10,
    ) -> None:
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.sdk_app_id = sdk_app_id
        self.sign_names = set(sign_names)
        # TemplateId -> number of variables, as approved
        self.templates = dict(templates if templates is not None else {"1000001": 2})
        self.clock = clock or time.time  # caps and report times; signatures use real time
        self.same_content_interval_s = same_content_interval_s
        self.daily_limit = daily_limit
        self.requests: list[SeenRequest] = []
        self.sent: list[SentSms] = []
        self._state = _State()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def provider_config(self, key_env: str, *, timeout_s: float = 3) -> dict[str, Any]:
        """central.yaml's `alerts.providers` entry that points the SDK here: templates 2001
        (alert: site, what, count, code) and 2002 (ack_notice: who, code), the secret key in
        the environment variable `key_env`."""
        return {
            "type": "tencent",
            "secret_id": self.secret_id,
            "secret_key_env": key_env,
            "sdk_app_id": self.sdk_app_id,
            "sign_name": "野保监测",
            "templates": {"alert": "2001", "ack_notice": "2002"},
            "template_params": {
                "alert": ["site", "what", "count", "code"],
                "ack_notice": ["who", "code"],
            },
            "endpoint": self.endpoint,
            "scheme": "http",
            "timeout_s": timeout_s,
        }

    def start(self) -> TencentSmsServer:
        """Listen on a free loopback port and serve in a thread."""
        handler = _handler_for(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held answers and stop serving."""
        self.release()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TencentSmsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        """host:port, what the SDK's HttpProfile.endpoint takes (with protocol "http")."""
        return f"127.0.0.1:{self.port}"

    # -- switches --------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, *, code: str = "InternalError", http_status: int = 200) -> None:
        """The next n API calls fail: with Tencent error `code` (HTTP 200, as the API answers
        errors), or with a bare HTTP error page when `http_status` is not 200."""
        with self._lock:
            self._state.faults.extend(_Fault(code, http_status) for _ in range(n))

    def hold_next(self, n: int = 1, seconds: float = 30.0) -> None:
        """The next n API calls are processed but answered only after `seconds` or release()."""
        with self._lock:
            self._released.clear()
            self._state.holds.extend(seconds for _ in range(n))

    def release(self) -> None:
        """Answer every held request now."""
        self._released.set()

    def mark_delivered(self, serial_no: str, *, at: float | None = None) -> SentSms:
        """The carrier reports the message delivered (DELIVRD)."""
        return self._report(serial_no, "SUCCESS", "DELIVRD", "用户短信送达成功", at)

    def mark_failed(
        self,
        serial_no: str,
        *,
        errmsg: str = "UNDELIV",
        description: str = "用户短信未送达",
        at: float | None = None,
    ) -> SentSms:
        """The carrier reports the message not delivered (e.g. phone off for too long)."""
        return self._report(serial_no, "FAIL", errmsg, description, at)

    def _report(
        self, serial_no: str, status: str, errmsg: str, description: str, at: float | None
    ) -> SentSms:
        with self._lock:
            sms = self.by_serial(serial_no)
            sms.report_status, sms.errmsg, sms.description = status, errmsg, description
            sms.received_at = self.clock() if at is None else at
            sms.pulled = False
            return sms

    def by_serial(self, serial_no: str) -> SentSms:
        for sms in self.sent:
            if sms.serial_no == serial_no:
                return sms
        raise KeyError(serial_no)

    def calls(self, action: str) -> list[SeenRequest]:
        """The requests seen for one action, in order."""
        return [r for r in self.requests if r.action == action]

    # -- push callbacks (what Tencent posts to central) ------------------------------------------

    def status_report(self, serial_no: str) -> dict[str, str]:
        """One status report in the documented push format."""
        sms = self.by_serial(serial_no)
        assert sms.report_status and sms.received_at is not None, "no report for this message"
        nation, mobile = _split(sms.phone)
        return {
            "user_receive_time": datetime.fromtimestamp(sms.received_at, BEIJING).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "nationcode": nation,
            "mobile": mobile,
            "report_status": sms.report_status,
            "errmsg": sms.errmsg,
            "description": sms.description,
            "sid": sms.serial_no,
        }

    def post_status_callback(
        self, url: str, serial_nos: Iterable[str], *, timeout_s: float = 10.0
    ) -> tuple[int, bytes]:
        """POST the reports of these messages, as one JSON array, to `url`."""
        body = [self.status_report(serial) for serial in serial_nos]
        return post_json(url, body, timeout_s=timeout_s)

    def reply_body(
        self,
        phone: str,
        text: str,
        *,
        sign: str | None = None,
        extend: str = "",
        at: float | None = None,
    ) -> dict[str, Any]:
        """One reply (uplink) in the documented push format."""
        nation, mobile = _split(phone)
        return {
            "extend": extend,
            "mobile": mobile,
            "nationcode": nation,
            "sign": sign if sign is not None else next(iter(sorted(self.sign_names)), ""),
            "text": text,
            "time": int(self.clock() if at is None else at),
        }

    def post_reply_callback(
        self, url: str, phone: str, text: str, *, timeout_s: float = 10.0, **kwargs: Any
    ) -> tuple[int, bytes]:
        """POST a reply from `phone` to `url`, as Tencent does."""
        return post_json(url, self.reply_body(phone, text, **kwargs), timeout_s=timeout_s)

    # -- the API ---------------------------------------------------------------------------------

    def handle(self, headers: Mapping[str, str], path: str, raw: bytes) -> tuple[int, str, bytes]:
        """Answer one POST: (HTTP status, content type, body). Called by the handler thread."""
        request_id = str(uuid.uuid4())
        lower = {k.lower(): v for k, v in headers.items()}
        action = lower.get("x-tc-action", "")
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = {}
        seen = SeenRequest(
            action=action,
            version=lower.get("x-tc-version", ""),
            region=lower.get("x-tc-region", ""),
            timestamp=int(lower.get("x-tc-timestamp", "0") or 0),
            headers=dict(headers),
            body=body if isinstance(body, dict) else {},
            signature_ok=False,
        )
        with self._lock:
            self.requests.append(seen)
            fault = self._state.faults.pop(0) if self._state.faults else None
            hold = self._state.holds.pop(0) if self._state.holds else None
        try:
            self._authenticate(lower, path, raw, seen)
            if fault is not None and fault.http_status != 200:
                seen.error = f"HTTP {fault.http_status}"
                page = f"<html><body><h1>{fault.http_status}</h1>nginx</body></html>"
                return fault.http_status, "text/html", page.encode()
            if fault is not None:
                raise ApiError(fault.code, f"injected fault {fault.code}")
            if seen.version != VERSION:
                raise ApiError("NoSuchVersion", f"version {seen.version!r} not supported")
            if not isinstance(body, dict):
                raise ApiError("InvalidParameter", "body is not a JSON object")
            if action == "SendSms":
                result = self._send_sms(body)
            elif action == "PullSmsSendStatus":
                result = self._pull_queue(body)
            elif action == "PullSmsSendStatusByPhoneNumber":
                result = self._pull_by_number(body)
            else:
                raise ApiError("InvalidAction", f"action {action!r} not found")
        except ApiError as exc:
            seen.error = exc.code
            result = {"Error": {"Code": exc.code, "Message": exc.message}}
        if hold is not None:
            self._released.wait(hold)
        result["RequestId"] = request_id
        payload = json.dumps({"Response": result}, ensure_ascii=False).encode()
        return 200, "application/json", payload

    def _authenticate(
        self, lower: Mapping[str, str], path: str, raw: bytes, seen: SeenRequest
    ) -> None:
        auth = _AUTH.match(lower.get("authorization", ""))
        if auth is None:
            raise ApiError(
                "AuthFailure.InvalidAuthorization", "Authorization is not TC3-HMAC-SHA256"
            )
        if auth["id"] != self.secret_id:
            raise ApiError("AuthFailure.SecretIdNotFound", "the SecretId is not found")
        if abs(time.time() - seen.timestamp) > SIGNATURE_MAX_AGE_S:
            raise ApiError("AuthFailure.SignatureExpire", "the signature has expired")
        date = datetime.fromtimestamp(seen.timestamp, UTC).strftime("%Y-%m-%d")
        signed = auth["headers"].split(";")
        if (
            auth["service"] != SERVICE
            or auth["date"] != date
            or "host" not in signed
            or "content-type" not in signed
        ):
            raise ApiError("AuthFailure.SignatureFailure", "the credential scope does not match")
        payload: bytes = raw
        if lower.get("x-tc-content-sha256") == "UNSIGNED-PAYLOAD":
            payload = b"UNSIGNED-PAYLOAD"
        expected = tc3_signature(
            self.secret_key,
            method="POST",
            path=path.split("?", 1)[0],
            query=path.split("?", 1)[1] if "?" in path else "",
            headers=lower,
            signed_headers=signed,
            payload=payload,
            timestamp=seen.timestamp,
        )
        if not hmac.compare_digest(expected, auth["sig"]):
            raise ApiError(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. Please check your signature is"
                " correct.",
            )
        seen.signature_ok = True

    def _send_sms(self, body: Mapping[str, Any]) -> dict[str, Any]:
        phones = body.get("PhoneNumberSet")
        if not isinstance(phones, list) or not phones:
            raise ApiError("MissingParameter.EmptyPhoneNumberSet", "PhoneNumberSet is empty")
        if len(phones) > 200:
            raise ApiError("LimitExceeded.PhoneNumberCountLimit", "more than 200 numbers")
        if str(body.get("SmsSdkAppId", "")) != self.sdk_app_id:
            raise ApiError("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId unknown")
        params = [str(p) for p in body.get("TemplateParamSet") or []]
        statuses = [self._send_one(str(phone), body, params) for phone in phones]
        return {"SendStatusSet": statuses}

    def _send_one(self, phone: str, body: Mapping[str, Any], params: list[str]) -> dict[str, Any]:
        session = str(body.get("SessionContext", "") or "")
        template_id = str(body.get("TemplateId", ""))
        sign = str(body.get("SignName", ""))
        status: dict[str, Any] = {
            "SerialNo": "",
            "PhoneNumber": phone,
            "Fee": 0,
            "SessionContext": session,
            "Code": "Ok",
            "Message": "send success",
            "IsoCode": "CN",
        }

        def refuse(code: str, message: str) -> dict[str, Any]:
            status.update(
                Code=code, Message=message, IsoCode="CN" if phone.startswith("+86") else "DEF"
            )
            return status

        normalized = _normalize(phone)
        if normalized is None:
            return refuse("InvalidParameterValue.IncorrectPhoneNumber", "incorrect phone number")
        status["PhoneNumber"] = normalized
        if sign not in self.sign_names:
            return refuse("FailedOperation.SignatureIncorrectOrUnapproved", "signature unapproved")
        if template_id not in self.templates:
            return refuse("FailedOperation.TemplateIncorrectOrUnapproved", "template unapproved")
        if len(params) != self.templates[template_id]:
            return refuse(
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                "TemplateParamSet does not match the approved template",
            )
        if any(_URL.search(p) for p in params):
            return refuse(
                "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
                "links are not allowed in template variables",
            )
        with self._lock:
            now = self.clock()
            today = datetime.fromtimestamp(now, BEIJING).date()
            mine = [s for s in self.sent if s.phone == normalized]
            same = [
                s
                for s in mine
                if s.template_id == template_id and s.params == params and s.sign_name == sign
            ]
            if any(now - s.sent_at < self.same_content_interval_s for s in same):
                return refuse(
                    "LimitExceeded.PhoneNumberThirtySecondLimit",
                    "the same content was sent to this number within 30 seconds",
                )
            sent_today = [
                s for s in mine if datetime.fromtimestamp(s.sent_at, BEIJING).date() == today
            ]
            if len(sent_today) >= self.daily_limit:
                return refuse(
                    "LimitExceeded.PhoneNumberDailyLimit",
                    "this number reached its daily limit",
                )
            serial = f"{secrets.randbelow(9000) + 1000}:{secrets.randbelow(10**28):028d}"
            self.sent.append(
                SentSms(
                    serial_no=serial,
                    phone=normalized,
                    sdk_app_id=str(body.get("SmsSdkAppId", "")),
                    sign_name=sign,
                    template_id=template_id,
                    params=params,
                    session_context=session,
                    sent_at=now,
                )
            )
        status.update(SerialNo=serial, Fee=1)
        return status

    def _check_app_and_limit(self, body: Mapping[str, Any]) -> int:
        if str(body.get("SmsSdkAppId", "")) != self.sdk_app_id:
            raise ApiError("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId unknown")
        limit = body.get("Limit")
        if not isinstance(limit, int) or not 0 < limit <= 100:
            raise ApiError("InvalidParameterValue.LimitVerifyFail", "Limit must be 1 to 100")
        return limit

    def _pull_queue(self, body: Mapping[str, Any]) -> dict[str, Any]:
        limit = self._check_app_and_limit(body)
        with self._lock:
            ready = [s for s in self.sent if s.report_status and not s.pulled][:limit]
            for sms in ready:
                sms.pulled = True
            return {"PullSmsSendStatusSet": [_pull_item(s) for s in ready]}

    def _pull_by_number(self, body: Mapping[str, Any]) -> dict[str, Any]:
        limit = self._check_app_and_limit(body)
        if body.get("Offset", 0) != 0:
            raise ApiError("InvalidParameterValue.OffsetVerifyFail", "Offset must be 0")
        begin = body.get("BeginTime")
        now = self.clock()
        if not isinstance(begin, int) or begin < now - 7 * 86400:
            raise ApiError(
                "InvalidParameterValue.BeginTimeVerifyFail", "BeginTime is at most 7 days ago"
            )
        end = body.get("EndTime")
        if end is not None and (not isinstance(end, int) or end < begin):
            raise ApiError("InvalidParameterValue.EndTimeVerifyFail", "EndTime before BeginTime")
        phone = _normalize(str(body.get("PhoneNumber", "")))
        if phone is None:
            raise ApiError("InvalidParameterValue.IncorrectPhoneNumber", "incorrect phone number")
        with self._lock:
            found = [
                s
                for s in self.sent
                if s.phone == phone
                and s.report_status
                and s.sent_at >= begin
                and (end is None or s.sent_at <= end)
            ][:limit]
            return {"PullSmsSendStatusSet": [_pull_item(s) for s in found]}


def _pull_item(sms: SentSms) -> dict[str, Any]:
    nation, mobile = _split(sms.phone)
    return {
        "UserReceiveTime": int(sms.received_at or 0),
        "CountryCode": nation,
        "SubscriberNumber": mobile,
        "PhoneNumber": sms.phone,
        "SerialNo": sms.serial_no,
        "ReportStatus": sms.report_status,
        "Description": sms.errmsg,
        "SessionContext": sms.session_context,
    }


def _normalize(phone: str) -> str | None:
    """+86 and 11 digits from the mainland forms Tencent accepts (+86, 0086, 86 or none)."""
    for prefix in ("+86", "0086", "86"):
        if phone.startswith(prefix) and len(phone) == len(prefix) + 11:
            phone = phone[len(prefix) :]
            break
    if len(phone) == 11 and phone.isdigit() and phone.startswith("1"):
        return "+86" + phone
    return None


def _split(phone: str) -> tuple[str, str]:
    if phone.startswith("+86"):
        return "86", phone[3:]
    return "", phone.lstrip("+")


def post_json(url: str, body: object, *, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """POST a JSON body as Tencent's callbacks do; (HTTP status, answer body)."""
    data = json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def _handler_for(server: TencentSmsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            raw = self.rfile.read(length) if length else b""
            status, content_type, body = server.handle(dict(self.headers.items()), self.path, raw)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet

    return Handler


__all__ = [
    "ApiError",
    "SeenRequest",
    "SentSms",
    "TencentSmsServer",
    "post_json",
    "tc3_signature",
]
