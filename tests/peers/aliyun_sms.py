"""Aliyun SMS on loopback: a real HTTP server that speaks the Dysmsapi 2017-05-25 API as the
official SDK (alibabacloud-dysmsapi20170525 4.x over alibabacloud-tea-openapi) calls it.

What the SDK sends, and what this server checks:

- `POST /?PhoneNumbers=..&SignName=..&TemplateCode=..&TemplateParam=..&OutId=..`, empty body;
  the action and version in `x-acs-action` / `x-acs-version`, and
  `Authorization: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<h1;h2..>,
  Signature=<hex>` (Aliyun's V3 signature). The server recomputes the signature with its own
  code (not the SDK's) from the method, path, sorted query, the signed headers and
  `x-acs-content-sha256`, and refuses as Aliyun does, with its error JSON and a 4xx:
  unknown AccessKeyId (404 InvalidAccessKeyId.NotFound), wrong signature (400
  SignatureDoesNotMatch), a stale `x-acs-date` (400 InvalidTimeStamp.Expired), a reused nonce
  (400 SignatureNonceUsed), missing headers (400 IncompleteSignature).
- SendSms: checks number, signature name, template code, TemplateParam (JSON, every template
  variable present, no links, <= 35 characters), the per-number daily cap per template
  (isv.BUSINESS_LIMIT_CONTROL, "触发天级流控Permits:N"); business refusals come back as
  HTTP 200 with the isv code in `Code`, as Aliyun does. A sent message is stored with a
  BizId and stays "waiting" (SendStatus 1) until the test marks it delivered or failed.
- QuerySendDetails: rows for one number and one Beijing day (optionally one BizId), paged.

Switches for faults: `fail_next(n)` (HTTP 5xx for the next n calls), `stall_next()` (take the
next SendSms, store it, then hold the answer until `release()`, so a client read timeout happens
after Aliyun got the request), `daily_cap` (sends per number, template and day), and
`mark_delivered` / `mark_failed`. `post_report` / `post_reply` push Aliyun-format SmsReport
and SmsUp callbacks (JSON arrays) to a URL, as Aliyun's HTTP batch push does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")
API_VERSION = "2017-05-25"
HOST_ID = "dysmsapi.aliyuncs.com"
ALGORITHM = "ACS3-HMAC-SHA256"
REQUIRED_SIGNED = (
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
)
MAX_CLOCK_SKEW = timedelta(minutes=15)
MAX_PARAM_CHARS = 35
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
_VAR = re.compile(r"\$\{(\w+)\}")
_PHONE = re.compile(r"^(?:\+?86|0086)?1\d{10}$")


class AliyunError(Exception):
    """An answer other than success: HTTP status plus Aliyun's Code and Message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class SeenRequest:
    """One request as the server received it (whether or not it was accepted)."""

    action: str
    query: dict[str, str]
    headers: dict[str, str]
    access_key_id: str
    signature_ok: bool
    status: int = 0
    code: str = ""


@dataclass
class StoredSms:
    """One message Aliyun took."""

    biz_id: str
    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    out_id: str
    content: str
    sent_at: datetime  # Beijing time
    send_status: int = 1  # 1 waiting, 2 failed, 3 delivered
    err_code: str = ""
    received_at: datetime | None = None


@dataclass
class _Stall:
    count: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class AliyunSmsServer:
    """The fake Aliyun SMS endpoint. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        *,
        access_keys: Mapping[str, str] | None = None,
        sign_names: Iterable[str] = ("野保监测",),
        templates: Mapping[str, str] | None = None,
        daily_cap: int = 50,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.access_keys = dict(access_keys or {"LTAI5tTestKeyId": "test-secret-0123456789"})
        self.sign_names = set(sign_names)
        self.templates = dict(
            templates
            or {
                "SMS_460001": "${site}发现异常：${what}，请回复“1 ${code}”确认。",
                "SMS_460002": "${site}告警${code}已由${who}确认。",
            }
        )
        self.daily_cap = daily_cap
        self.clock = clock or (lambda: datetime.now(UTC))
        self.requests: list[SeenRequest] = []
        self.messages: list[StoredSms] = []
        self._lock = threading.Lock()
        self._nonces: set[str] = set()
        self._fail: list[tuple[int, str, str]] = []
        self._stall = _Stall()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> AliyunSmsServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                server._handle(self)

            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # how long shutdown() waits for the loop
            name="aliyun-sms",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> AliyunSmsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        """What to give the SDK as `endpoint` (with protocol "http")."""
        return f"127.0.0.1:{self.port}"

    # -- switches -----------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        code: str = "InternalError",
        message: str = "The request processing has failed due to some unknown error.",
    ) -> None:
        """Answer the next `n` signed requests with HTTP `status` and Aliyun's error JSON."""
        with self._lock:
            self._fail.extend([(status, code, message)] * n)

    def stall_next(self, n: int = 1) -> threading.Event:
        """Take the next `n` SendSms (stored, as Aliyun would) but hold the answers until
        `release()`. Returns an event set when a stalled request has arrived."""
        with self._lock:
            self._stall = _Stall(count=n)
            return self._stall.arrived

    def release(self) -> None:
        """Let stalled requests answer (to clients that have usually given up by then)."""
        with self._lock:
            self._stall.release.set()

    def mark_delivered(self, biz_id: str, *, at: datetime | None = None) -> StoredSms:
        return self._mark(biz_id, 3, "DELIVERED", at)

    def mark_failed(
        self, biz_id: str, err_code: str = "MK:0001", *, at: datetime | None = None
    ) -> StoredSms:
        return self._mark(biz_id, 2, err_code, at)

    def _mark(self, biz_id: str, status: int, err_code: str, at: datetime | None) -> StoredSms:
        with self._lock:
            sms = self._by_biz_id(biz_id)
            sms.send_status = status
            sms.err_code = err_code
            sms.received_at = (at or self.clock()).astimezone(BEIJING).replace(microsecond=0)
            return sms

    def _by_biz_id(self, biz_id: str) -> StoredSms:
        for sms in self.messages:
            if sms.biz_id == biz_id:
                return sms
        raise KeyError(f"no message with BizId {biz_id}")

    def message(self, biz_id: str) -> StoredSms:
        with self._lock:
            return self._by_biz_id(biz_id)

    # -- push callbacks (Aliyun -> central) ---------------------------------------------------

    def report_items(self, biz_ids: Iterable[str]) -> list[dict[str, Any]]:
        """SmsReport items (the documented HTTP batch push format) for these messages."""
        items = []
        with self._lock:
            for biz_id in biz_ids:
                sms = self._by_biz_id(biz_id)
                if sms.send_status == 1:
                    raise ValueError(f"{biz_id} has no delivery report yet")
                items.append(
                    {
                        "phone_number": sms.phone,
                        "send_time": _local(sms.sent_at),
                        "report_time": _local(sms.received_at or sms.sent_at),
                        "success": sms.send_status == 3,
                        "err_code": sms.err_code,
                        "err_msg": "用户接收成功" if sms.send_status == 3 else "用户接收失败",
                        "sms_size": "1",
                        "biz_id": sms.biz_id,
                        "out_id": sms.out_id,
                    }
                )
        return items

    def post_report(self, url: str, biz_ids: Iterable[str]) -> tuple[int, bytes]:
        """POST an SmsReport push for these messages to `url`; returns (status, body)."""
        return post_json(url, self.report_items(biz_ids))

    def post_reply(
        self,
        url: str,
        phone: str,
        content: str,
        *,
        at: datetime | None = None,
        sign_name: str | None = None,
        dest_code: str = "1234",
        sequence_id: int | None = None,
    ) -> tuple[int, bytes]:
        """POST an SmsUp push (a person's reply) to `url`; returns (status, body)."""
        item = {
            "phone_number": phone,
            "send_time": _local((at or self.clock()).astimezone(BEIJING)),
            "content": content,
            "sign_name": sign_name or next(iter(sorted(self.sign_names))),
            "dest_code": dest_code,
            "sequence_id": sequence_id if sequence_id is not None else random.randrange(10**9),
        }
        return post_json(url, [item])

    # -- the API ------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        split = urlsplit(h.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in h.headers.items()}
        action = headers.get("x-acs-action", "")
        seen = SeenRequest(
            action=action, query=query, headers=headers, access_key_id="", signature_ok=False
        )
        with self._lock:
            self.requests.append(seen)
        try:
            seen.access_key_id = self._verify(h.command, split.path or "/", query, headers, body)
            seen.signature_ok = True
            with self._lock:
                fault = self._fail.pop(0) if self._fail else None
            if fault is not None:
                raise AliyunError(*fault)
            if headers.get("x-acs-version") != API_VERSION:
                raise AliyunError(
                    400, "InvalidVersion", "Specified parameter Version is not valid."
                )
            if action == "SendSms":
                answer = self._send_sms(query)
            elif action == "QuerySendDetails":
                answer = self._query_send_details(query)
            else:
                raise AliyunError(
                    404, "InvalidAction.NotFound", f"Specified api is not found: {action}"
                )
        except AliyunError as exc:
            seen.status, seen.code = exc.status, exc.code
            _reply(h, exc.status, _error_body(exc))
            return
        seen.status, seen.code = 200, str(answer.get("Code", ""))
        stall = self._take_stall() if action == "SendSms" and answer["Code"] == "OK" else None
        if stall is not None:
            stall.arrived.set()
            stall.release.wait(timeout=60)
        _reply(h, 200, answer)

    def _take_stall(self) -> _Stall | None:
        with self._lock:
            if self._stall.count <= 0:
                return None
            self._stall.count -= 1
            return self._stall

    def _verify(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> str:
        """Check the ACS3-HMAC-SHA256 signature; returns the AccessKeyId."""
        auth = headers.get("authorization", "")
        if not auth.startswith(ALGORITHM + " "):
            raise AliyunError(400, "IncompleteSignature", "The request signature is missing.")
        fields = dict(
            part.strip().split("=", 1)
            for part in auth[len(ALGORITHM) + 1 :].split(",")
            if "=" in part
        )
        key_id = fields.get("Credential", "")
        signed = [h for h in fields.get("SignedHeaders", "").split(";") if h]
        signature = fields.get("Signature", "")
        secret = self.access_keys.get(key_id)
        if secret is None:
            raise AliyunError(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        missing = [h for h in REQUIRED_SIGNED if h not in signed or h not in headers]
        if missing or not signature:
            raise AliyunError(
                400, "IncompleteSignature", f"Headers must be signed: {', '.join(missing)}"
            )
        payload_hash = hashlib.sha256(body).hexdigest()
        if headers["x-acs-content-sha256"] != payload_hash:
            raise AliyunError(
                400, "IncompleteSignature", "x-acs-content-sha256 does not match the body."
            )
        try:
            stamp = datetime.strptime(headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise AliyunError(
                400, "InvalidTimeStamp.Format", "Specified time stamp is not valid."
            ) from None
        if abs(self.clock() - stamp.replace(tzinfo=UTC)) > MAX_CLOCK_SKEW:
            raise AliyunError(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        canonical_query = "&".join(
            f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query.items())
        )
        canonical_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed)
        canonical = "\n".join(
            [
                method.upper(),
                quote(path, safe="/~"),
                canonical_query,
                canonical_headers,
                ";".join(signed),
                payload_hash,
            ]
        )
        to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise AliyunError(
                400, "SignatureDoesNotMatch", "Specified signature does not match our calculation."
            )
        nonce = headers["x-acs-signature-nonce"]
        with self._lock:
            if nonce in self._nonces:
                raise AliyunError(400, "SignatureNonceUsed", "Specified signature nonce was used.")
            self._nonces.add(nonce)
        return key_id

    def _send_sms(self, q: Mapping[str, str]) -> dict[str, Any]:
        phone = q.get("PhoneNumbers", "")
        sign = q.get("SignName", "")
        code = q.get("TemplateCode", "")
        if not phone or not sign or not code:
            raise AliyunError(400, "MissingParameter", "PhoneNumbers, SignName, TemplateCode.")
        if not _PHONE.match(phone):
            return _business("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if sign not in self.sign_names:
            return _business("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        template = self.templates.get(code)
        if template is None:
            return _business("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            params = json.loads(q.get("TemplateParam") or "{}")
        except json.JSONDecodeError:
            return _business("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            return _business("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        wanted = _VAR.findall(template)
        if any(not params.get(name) for name in wanted):
            return _business("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        if any(_URL.search(v) for v in params.values()):
            return _business("isv.PARAM_NOT_SUPPORT_URL", "不支持URL")
        if any(len(v) > MAX_PARAM_CHARS for v in params.values()):
            return _business("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        now = self.clock().astimezone(BEIJING).replace(microsecond=0)
        with self._lock:
            today = [
                m
                for m in self.messages
                if m.phone == phone
                and m.template_code == code
                and m.sign_name == sign
                and m.sent_at.date() == now.date()
            ]
            if len(today) >= self.daily_cap:
                return _business(
                    "isv.BUSINESS_LIMIT_CONTROL", f"触发天级流控Permits:{self.daily_cap}"
                )
            sms = StoredSms(
                biz_id=f"{random.randrange(10**17, 10**18)}^0",
                phone=phone,
                sign_name=sign,
                template_code=code,
                params=params,
                out_id=q.get("OutId", ""),
                content=f"【{sign}】" + _VAR.sub(lambda m: params.get(m.group(1), ""), template),
                sent_at=now,
            )
            self.messages.append(sms)
        return {"Code": "OK", "Message": "OK", "BizId": sms.biz_id, "RequestId": _request_id()}

    def _query_send_details(self, q: Mapping[str, str]) -> dict[str, Any]:
        phone = q.get("PhoneNumber", "")
        send_date = q.get("SendDate", "")
        try:
            day = datetime.strptime(send_date, "%Y%m%d").date()
            size = int(q.get("PageSize", ""))
            page = int(q.get("CurrentPage", ""))
        except ValueError:
            return _business("isv.INVALID_PARAMETERS", "参数异常")
        if not phone or not 1 <= size <= 50 or page < 1:
            return _business("isv.INVALID_PARAMETERS", "参数异常")
        biz_id = q.get("BizId")
        with self._lock:
            rows = [
                m
                for m in self.messages
                if m.phone == phone
                and m.sent_at.date() == day
                and (not biz_id or m.biz_id == biz_id)
            ]
            dtos = [
                {
                    "PhoneNum": m.phone,
                    "SendStatus": m.send_status,
                    "ErrCode": m.err_code,
                    "TemplateCode": m.template_code,
                    "Content": m.content,
                    "SendDate": _local(m.sent_at),
                    "ReceiveDate": _local(m.received_at) if m.received_at else "",
                    "OutId": m.out_id,
                }
                for m in rows[(page - 1) * size : page * size]
            ]
        return {
            "Code": "OK",
            "Message": "OK",
            "RequestId": _request_id(),
            "TotalCount": len(rows),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos},
        }


def post_json(url: str, payload: object, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """POST JSON as Aliyun's HTTP batch push does; returns (status, body) for any status."""
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def _business(code: str, message: str) -> dict[str, Any]:
    """A business refusal: HTTP 200 with the isv code, as Aliyun's SMS API answers."""
    return {"Code": code, "Message": message, "RequestId": _request_id()}


def _error_body(exc: AliyunError) -> dict[str, Any]:
    return {
        "RequestId": _request_id(),
        "HostId": HOST_ID,
        "Code": exc.code,
        "Message": exc.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={exc.code}&product=Dysmsapi",
    }


def _reply(h: BaseHTTPRequestHandler, status: int, payload: Mapping[str, Any]) -> None:
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    try:
        h.send_response(status)
        h.send_header("Content-Type", "application/json;charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
        pass


def _local(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


__all__ = ["AliyunError", "AliyunSmsServer", "SeenRequest", "StoredSms", "post_json"]
