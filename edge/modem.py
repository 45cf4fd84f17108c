"""Reboot a Huawei HiLink 4G dongle (E3372h and its kin) through its web API.

The node's link watch (edge/link.py) runs `link.modem_reset_command` when the broker has been
out of reach too long; for a HiLink stick that command is `wildwatch edge modem-reset --hilink
http://192.168.8.1/`, which ends here. The dongle is a router on the USB bus: no sudo needed.

The talking is done by huawei-lte-api (the library Home Assistant's huawei_lte integration uses),
which knows the firmware variants. What it sends, as of 2.0.1:

1. GET the home page: a `SessionID` cookie, and the CSRF tokens from its
   `<meta name="csrf_token" content="...">` tags when it has them; otherwise GET
   `api/webserver/token` (`<token>`), or where that answers error 100002 (not supported)
   `api/webserver/SesTokInfo` (`<TokInfo>`).
2. With a username or password only: GET `api/user/state-login` (`<State>`, `<password_type>`),
   then POST `api/user/login` (Username, Password base64 or, for password_type 4, the SHA-256
   form salted with the current token); the answer's `__RequestVerificationTokenone/two` headers
   are the tokens from then on.
3. POST `api/device/control` with the `__RequestVerificationToken` header, the cookie and the
   body `<request><Control>1</Control></request>` (1: reboot). Success is
   `<response>OK</response>`; a refusal is `<error><code>...</code></error>`. A CSRF refusal
   (125002) makes the library fetch new tokens and try once more.
4. With a login: POST `api/user/logout` on close. The dongle may already be going down by then,
   so anything that goes wrong after the reboot was accepted is not a failure.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlparse
from xml.parsers.expat import ExpatError

import requests
from huawei_lte_api.Client import Client
from huawei_lte_api.Connection import Connection
from huawei_lte_api.enums.client import ResponseEnum
from huawei_lte_api.enums.device import ControlModeEnum
from huawei_lte_api.exceptions import (
    LoginErrorInvalidCredentialsException,
    ResponseErrorException,
)

log = logging.getLogger(__name__)

PASSWORD_ENV = "WILDWATCH_HILINK_PASSWORD"

# HiLink error codes an operator may meet here (huawei_lte_api.enums), Chinese first.
_CODES = {
    100002: "不支持 not supported",
    100003: "需要登录 login required",
    100004: "设备忙 system busy",
    100005: "请求格式错误 request format error",
    108001: "用户名错误 wrong username",
    108002: "密码错误 wrong password",
    108003: "已有人登录 already logged in elsewhere",
    108006: "用户名或密码错误 wrong username or password",
    108007: "登录次数过多，已锁定 too many attempts, locked",
    115002: "须先修改密码 the password must be changed first",
    125002: "会话令牌无效 session token rejected",
    125003: "会话令牌错误 wrong session token",
}


class ModemResetError(Exception):
    """The dongle was not rebooted; the message is one line, Chinese first with English beside."""


def reset_hilink(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 20.0,
) -> None:
    """Ask the HiLink dongle at `url` (e.g. "http://192.168.8.1/") to reboot.

    `username`/`password` log in first (a dongle with a locked web UI; the username defaults to
    "admin" when only a password is given). `timeout_s` bounds each HTTP request (connect and
    each read), not the whole exchange of up to six requests. Returns once the dongle answered
    OK; raises ModemResetError when it is unreachable, refused the reboot (with the HiLink error
    code) or the login failed.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ModemResetError(f"HiLink 地址无效 not an http(s) URL: {url!r}")
    if timeout_s <= 0:
        raise ValueError("timeout_s must be positive")
    # huawei_lte_api logs the password at DEBUG when it connects: never let that reach a log.
    lib_log = logging.getLogger("huawei_lte_api")
    if lib_log.getEffectiveLevel() < logging.INFO:
        lib_log.setLevel(logging.INFO)
    login = bool(username or password)

    try:
        connection = Connection(url, username=username, password=password, timeout=timeout_s)
    except LoginErrorInvalidCredentialsException as exc:
        raise ModemResetError(
            f"HiLink 登录失败 login failed at {url}: {_code_text(exc)} "
            f"(check --username and ${PASSWORD_ENV})"
        ) from exc
    except ResponseErrorException as exc:
        what = "HiLink 登录失败 login failed" if login else "HiLink 拒绝会话 session refused"
        raise ModemResetError(f"{what} at {url}: {_code_text(exc)}") from exc
    except (requests.RequestException, ExpatError, KeyError, ValueError) as exc:
        raise _transport_error(url, exc, timeout_s) from exc

    try:
        answer = Client(connection).device.set_control(ControlModeEnum.REBOOT)
    except ResponseErrorException as exc:
        _close_quietly(connection)
        hint = f" (set --username and ${PASSWORD_ENV})" if exc.code == 100003 and not login else ""
        raise ModemResetError(
            f"HiLink 拒绝重启 refused the reboot at {url}: {_code_text(exc)}{hint}"
        ) from exc
    except (requests.RequestException, ExpatError, KeyError, ValueError) as exc:
        _close_quietly(connection)
        raise _transport_error(url, exc, timeout_s) from exc
    _close_quietly(connection)
    if answer != ResponseEnum.OK.value:
        raise ModemResetError(
            f"HiLink 应答异常 unexpected answer to the reboot at {url}: {str(answer)[:80]!r}"
        )
    log.info("HiLink dongle at %s accepted the reboot", url)


def _close_quietly(connection: Connection) -> None:
    """Log out (when logged in) and close; the dongle may already be rebooting."""
    try:
        connection.close()
    except Exception as exc:  # the outcome is decided already; a failed logout changes nothing
        log.debug("HiLink: closing the session failed (%s); ignored", exc)


def _code_text(exc: ResponseErrorException) -> str:
    code = int(exc.code)
    return f"error {code} ({_CODES.get(code, str(exc))})"


def _transport_error(url: str, exc: Exception, timeout_s: float) -> ModemResetError:
    if isinstance(exc, requests.ConnectTimeout):
        return ModemResetError(
            f"HiLink 无法连接 unreachable at {url}: connect timed out after {timeout_s:g} s"
        )
    if isinstance(exc, requests.Timeout):
        return ModemResetError(f"HiLink 无应答 no answer from {url} within {timeout_s:g} s")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return ModemResetError(
            f"HiLink 应答异常 {url} answered HTTP {exc.response.status_code} "
            "(not a HiLink web API?)"
        )
    if isinstance(exc, requests.ConnectionError):
        # requests' text is a long nest of reprs; the errno part is what an operator can use.
        found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
        reason = found.group(0) if found else type(exc).__name__
        return ModemResetError(f"HiLink 无法连接 unreachable at {url}: {reason}")
    if isinstance(exc, requests.RequestException):
        return ModemResetError(f"HiLink 请求失败 request to {url} failed: {type(exc).__name__}")
    return ModemResetError(
        f"HiLink 应答异常 {url} does not answer as a HiLink web API: {type(exc).__name__}"
    )
