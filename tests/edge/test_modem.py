"""The HiLink dongle reset against a local HiLink web API, through the real huawei-lte-api.

`HiLink` is an http.server on loopback that answers the requests huawei-lte-api 2.0.1 makes as
an E3372h does: the home page sets the `SessionID` cookie (and, on firmware with a locked web
UI, carries two `csrf_token` meta tags); `api/webserver/token` is not supported there, so the
token comes from `api/webserver/SesTokInfo`; `api/user/state-login` and `api/user/login` (the
SHA-256 password form, password_type 4) hand out a new session cookie and the
`__RequestVerificationTokenone/two` headers; `api/device/control` checks the cookie, the token
header and the `<request><Control>1</Control></request>` body before it answers
`<response>OK</response>`. Anything else is answered `<error><code>...</code></error>`, as the
firmware does.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge.link import LinkSettings, LinkWatch
from edge.modem import PASSWORD_ENV, ModemResetError, reset_hilink
from tests.helpers import FakeClock, free_port

WILDWATCH = str(Path(sys.executable).with_name("wildwatch"))
USERNAME = "admin"
PASSWORD = "Zh3jiang-4G!"


@dataclass
class _Session:
    tokens: set[str] = field(default_factory=set)
    logged_in: bool = False


class HiLink:
    """A HiLink dongle's web API on 127.0.0.1 (a daemon thread); use as a context manager.

    `password`: the web UI is locked (login first, SHA-256 form); `refuse`: the control POST
    answers this error code; `down_after_reboot`: once the reboot is accepted, every further
    request has its connection dropped unanswered (the dongle going down).
    """

    def __init__(
        self,
        *,
        password: str | None = None,
        refuse: int | None = None,
        down_after_reboot: bool = False,
    ) -> None:
        self.password = password
        self.refuse = refuse
        self.down_after_reboot = down_after_reboot
        self.sessions: dict[str, _Session] = {}
        self.requests: list[str] = []  # "GET /api/..." in arrival order
        self.reboots = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> HiLink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def _new_session(self, tokens: int, logged_in: bool = False) -> tuple[str, list[str]]:
        sid = secrets.token_hex(16)
        issued = [secrets.token_hex(16) for _ in range(tokens)]
        self.sessions[sid] = _Session(set(issued), logged_in)
        return sid, issued

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        dongle = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with dongle.lock:
                    dongle.requests.append(f"{method} {self.path}")
                    if dongle.down_after_reboot and dongle.reboots:
                        self.close_connection = True  # dropped without an answer
                        return
                    self._answer(method, body)

            def _send(
                self, text: str, *, cookie: str | None = None, headers: dict[str, str] | None = None
            ) -> None:
                data = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                if cookie is not None:
                    self.send_header("Set-Cookie", f"SessionID={cookie}; path=/; HttpOnly")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _xml(
                self,
                inner: str,
                *,
                cookie: str | None = None,
                headers: dict[str, str] | None = None,
            ) -> None:
                xml = f'<?xml version="1.0" encoding="UTF-8"?>\n{inner}'
                self._send(xml, cookie=cookie, headers=headers)

            def _error(self, code: int) -> None:
                self._xml(f"<error><code>{code}</code><message></message></error>")

            def _session(self) -> _Session | None:
                cookie = SimpleCookie(self.headers.get("Cookie") or "")
                morsel = cookie.get("SessionID")
                return dongle.sessions.get(morsel.value) if morsel else None

            def _token_ok(self, session: _Session) -> bool:
                token = self.headers.get("__RequestVerificationToken")
                if token is None or token not in session.tokens:
                    return False
                session.tokens.discard(token)  # one POST a token, as on the firmware
                return True

            def _answer(self, method: str, body: bytes) -> None:
                path = self.path
                if method == "GET" and path == "/":
                    # Locked firmware puts two CSRF tokens in the page; the plain E3372h none.
                    sid, tokens = dongle._new_session(2 if dongle.password else 0)
                    metas = "".join(f'<meta name="csrf_token" content="{t}"/>\n' for t in tokens)
                    page = f"<!DOCTYPE html>\n<html><head>\n{metas}</head><body></body></html>"
                    self._send(page, cookie=sid)
                    return
                session = self._session()
                if method == "GET" and path == "/api/webserver/token":
                    self._error(100002)  # the E3372h answers SesTokInfo only
                elif method == "GET" and path == "/api/webserver/SesTokInfo":
                    if session is None:
                        self._error(125002)
                        return
                    token = secrets.token_hex(16)
                    session.tokens.add(token)
                    sid = self.headers["Cookie"].split("=", 1)[1]
                    self._xml(
                        f"<response><SesInfo>SessionID={sid}</SesInfo>"
                        f"<TokInfo>{token}</TokInfo></response>"
                    )
                elif method == "GET" and path == "/api/user/state-login":
                    state = 0 if session is not None and session.logged_in else -1
                    self._xml(
                        f"<response><State>{state}</State><Username></Username>"
                        "<password_type>4</password_type></response>"
                    )
                elif method == "POST" and path == "/api/user/login":
                    self._login(session, body)
                elif method == "POST" and path == "/api/user/logout":
                    if session is None or not self._token_ok(session):
                        self._error(125002)
                        return
                    session.logged_in = False
                    self._xml("<response>OK</response>")
                elif method == "POST" and path == "/api/device/control":
                    self._control(session, body)
                else:
                    self._error(100002)

            def _login(self, session: _Session | None, body: bytes) -> None:
                token = self.headers.get("__RequestVerificationToken") or ""
                if session is None or not self._token_ok(session):
                    self._error(125002)
                    return
                request = ET.fromstring(body)
                user = request.findtext("Username") or ""
                salted = user.encode() + _b64_sha256(dongle.password or "") + token.encode()
                if user != USERNAME or request.findtext("Password") != _b64_sha256(salted).decode(
                    "ascii"
                ):
                    self._error(108006)
                    return
                # A new session cookie and two new tokens; the old ones are void.
                for sid, known in list(dongle.sessions.items()):
                    if known is session:
                        del dongle.sessions[sid]
                sid, (one, two) = dongle._new_session(2, logged_in=True)
                self._xml(
                    "<response>OK</response>",
                    cookie=sid,
                    headers={
                        "__RequestVerificationTokenone": one,
                        "__RequestVerificationTokentwo": two,
                    },
                )

            def _control(self, session: _Session | None, body: bytes) -> None:
                if session is None or not self._token_ok(session):
                    self._error(125002)
                    return
                if self.headers.get("Content-Type") != "application/xml":
                    self._error(100005)
                    return
                request = ET.fromstring(body)
                if request.tag != "request" or [(c.tag, c.text) for c in request] != [
                    ("Control", "1")
                ]:
                    self._error(100005)
                    return
                if dongle.password and not session.logged_in:
                    self._error(100003)
                    return
                if dongle.refuse is not None:
                    self._error(dongle.refuse)
                    return
                dongle.reboots += 1
                self._xml("<response>OK</response>")

        return Handler


def _b64_sha256(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(hashlib.sha256(raw).hexdigest().encode("ascii"))


def cli(
    url: str, *args: str, password: str | None = None, verbose: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    if password is not None:
        env[PASSWORD_ENV] = password
    argv = [WILDWATCH, *(["-vv"] if verbose else []), "edge", "modem-reset", "--hilink", url]
    return subprocess.run(
        [*argv, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


# -- the function ---------------------------------------------------------------------------------
def test_e3372h_session_token_then_reboot() -> None:
    with HiLink() as dongle:
        reset_hilink(dongle.url)
    assert dongle.reboots == 1
    assert dongle.requests == [
        "GET /",
        "GET /api/webserver/token",
        "GET /api/webserver/SesTokInfo",
        "POST /api/device/control",
    ]


def test_login_then_reboot_and_a_dongle_that_goes_down_before_the_logout() -> None:
    with HiLink(password=PASSWORD, down_after_reboot=True) as dongle:
        reset_hilink(dongle.url, username=USERNAME, password=PASSWORD)
    assert dongle.reboots == 1
    assert dongle.requests == [
        "GET /",
        "GET /api/user/state-login",
        "POST /api/user/login",
        "POST /api/device/control",
        "POST /api/user/logout",  # dropped: the dongle is rebooting, which is no failure
    ]


def test_login_and_logout_on_a_dongle_that_stays_up() -> None:
    with HiLink(password=PASSWORD) as dongle:
        reset_hilink(dongle.url, password=PASSWORD)  # username: admin by default
    assert dongle.reboots == 1
    assert dongle.requests[-1] == "POST /api/user/logout"
    assert not any(s.logged_in for s in dongle.sessions.values())


def test_wrong_password_is_a_login_failure() -> None:
    with HiLink(password=PASSWORD) as dongle, pytest.raises(ModemResetError) as err:
        reset_hilink(dongle.url, username=USERNAME, password="wrong")
    assert dongle.reboots == 0
    assert str(err.value).startswith("HiLink 登录失败 login failed")
    assert "error 108006" in str(err.value)
    assert "POST /api/device/control" not in dongle.requests


def test_locked_dongle_without_credentials_says_login_required() -> None:
    with HiLink(password=PASSWORD) as dongle, pytest.raises(ModemResetError) as err:
        reset_hilink(dongle.url)
    assert dongle.reboots == 0
    text = str(err.value)
    assert text.startswith("HiLink 拒绝重启 refused the reboot")
    assert "error 100003 (需要登录 login required)" in text and PASSWORD_ENV in text


def test_refusal_carries_the_hilink_error_code() -> None:
    with HiLink(refuse=100004) as dongle, pytest.raises(ModemResetError) as err:
        reset_hilink(dongle.url)
    assert dongle.reboots == 0
    assert "拒绝重启" in str(err.value) and "error 100004 (设备忙 system busy)" in str(err.value)


def test_unreachable_dongle() -> None:
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    with pytest.raises(ModemResetError) as err:
        reset_hilink(url, timeout_s=5)
    assert str(err.value).startswith(f"HiLink 无法连接 unreachable at {url}: [Errno")


def test_not_an_http_url() -> None:
    with pytest.raises(ModemResetError, match="not an http"):
        reset_hilink("192.168.8.1")


# -- the command line -----------------------------------------------------------------------------
def test_cli_exit_0_on_reboot() -> None:
    with HiLink() as dongle:
        done = cli(dongle.url)
    assert done.returncode == 0, done.stderr
    assert dongle.reboots == 1
    assert "accepted the reboot" in done.stdout


def test_cli_password_from_the_environment_never_logged() -> None:
    with HiLink(password=PASSWORD) as dongle:
        done = cli(dongle.url, "--username", USERNAME, password=PASSWORD, verbose=True)
    assert done.returncode == 0, done.stderr
    assert dongle.reboots == 1
    assert PASSWORD not in done.stderr + done.stdout  # even at -vv (the library logs it at DEBUG)


def test_cli_failures_exit_non_zero_with_one_line_on_stderr() -> None:
    with HiLink(password=PASSWORD) as dongle:
        wrong = cli(dongle.url, "--username", USERNAME, password="wrong")
        no_password = cli(dongle.url, "--username", USERNAME)
    assert dongle.reboots == 0
    assert wrong.returncode == 1
    first = wrong.stderr.splitlines()[0]
    assert first.startswith("Error: HiLink 登录失败 login failed") and "108006" in first
    assert no_password.returncode == 1 and PASSWORD_ENV in no_password.stderr
    unreachable = cli(f"http://127.0.0.1:{free_port()}/")
    assert unreachable.returncode == 1 and "无法连接 unreachable" in unreachable.stderr


def test_password_is_not_an_option() -> None:
    done = subprocess.run(
        [WILDWATCH, "edge", "modem-reset", "--hilink", "http://127.0.0.1:9/", "--password", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "--password" in done.stderr


# -- the link watch -------------------------------------------------------------------------------
def _watch(url: str, state: Path, clock: FakeClock) -> LinkWatch:
    link = LinkSettings(
        check_s=30,
        modem_reset_after_s=600,
        modem_reset_command=[WILDWATCH, "edge", "modem-reset", "--hilink", url],
        command_timeout_s=60,
    )
    return LinkWatch(link, lambda: False, state, clock=clock)


def test_link_watch_resets_the_hilink_dongle_once(tmp_path: Path) -> None:
    clock = FakeClock()
    with HiLink() as dongle:
        watch = _watch(dongle.url, tmp_path / "link.json", clock)
        watch.check()  # the offline stretch starts
        clock.advance(599)
        watch.check()
        assert dongle.reboots == 0
        clock.advance(1)
        watch.check()  # 600 s offline: the modem reset runs
        clock.advance(30)
        watch.check()  # not again before modem_reset_every_s
    assert dongle.reboots == 1
    assert [r for r in dongle.requests if r.startswith("POST")] == ["POST /api/device/control"]
    health = watch.health()
    assert health.modem_resets == 1
    assert health.last_action is not None and health.last_action.startswith("modem reset: exit 0")


def test_link_watch_records_a_refused_reset(tmp_path: Path) -> None:
    clock = FakeClock()
    with HiLink(refuse=100004) as dongle:
        watch = _watch(dongle.url, tmp_path / "link.json", clock)
        watch.check()
        clock.advance(600)
        watch.check()
    health = watch.health()
    assert health.modem_resets == 1
    assert health.last_action is not None
    assert health.last_action.startswith(
        "modem reset failed: exit 1: Error: HiLink 拒绝重启 refused the reboot"
    )
    assert "error 100004" in health.last_action
