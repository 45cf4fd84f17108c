"""Network cameras: credentials kept out of logs, and why a camera gives no stream."""

from __future__ import annotations

import base64
import hashlib
import http.client
import re
import secrets
import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

RTSP_PORT = 554
MAX_HEAD_BYTES = 16_384  # an answer's header block longer than this is not a camera's


def redact_url(url: str | int) -> str:
    """`url` with the password of its user-info replaced by ***; other text unchanged."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return re.sub(r"//[^/@]*@", "//***@", text)
    if parts.password is None:
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username}:***@{host}" if parts.username else f":***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class FeedProblem:
    """Why a network camera gives no stream, as the duty officer should read it."""

    code: Literal["unreachable", "unauthorized", "not_found", "refused", "no_video", "unknown"]
    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.zh} / {self.en}"


def _problem_for_status(status: int, reason: str) -> FeedProblem | None:
    """The problem an RTSP/HTTP status code stands for (None: the camera serves the stream)."""
    answer = f"{status} {reason}".strip()
    if status in (401, 403):
        return FeedProblem(
            "unauthorized",
            f"摄像机拒绝登录（{status}），请核对用户名和密码",
            f"the camera refused the login ({answer}); check user name and password",
        )
    if status == 404:
        return FeedProblem(
            "not_found",
            "摄像机上没有这个视频流地址（404），请核对通道路径",
            "no such stream on the camera (404); check the stream path",
        )
    if status >= 400:
        return FeedProblem(
            "refused",
            f"摄像机拒绝了请求（{status}）",
            f"the camera answered {answer}",
        )
    return None


def _basic_auth(user: str | None, password: str | None) -> dict[str, str]:
    """An HTTP/RTSP Basic Authorization header for decoded credentials ({} without a user)."""
    if user is None:
        return {}
    token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _read_head(sock: socket.socket) -> bytes:
    """Bytes up to the end of a response's header block (the body, if any, is not read)."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_HEAD_BYTES:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """(status, reason, lower-cased headers) of an RTSP response head."""
    first, _, rest = head.decode("latin-1").partition("\r\n")
    match = re.match(r"RTSP/\d\.\d\s+(\d{3})\s*(.*)", first)
    if not match:
        raise OSError(f"not an RTSP answer: {first[:60]!r}")
    headers: dict[str, str] = {}
    for line in rest.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:  # a repeated header (several WWW-Authenticate challenges) is kept line by line
            key = name.strip().lower()
            headers[key] = f"{headers[key]}\n{value.strip()}" if key in headers else value.strip()
    return int(match.group(1)), match.group(2).strip(), headers


def digest_authorization(
    challenge: str, user: str, password: str, method: str, uri: str, cnonce: str | None = None
) -> str | None:
    """The Authorization header answering an RFC 2617 Digest challenge (MD5, no qop or qop=auth).

    Most IP cameras (Hikvision, Dahua, ...) ask RTSP clients for Digest, not Basic.
    None when `challenge` is not a Digest challenge this function can answer.
    """
    if not challenge.lower().startswith("digest"):
        return None
    fields = dict(re.findall(r'(\w+)\s*=\s*"?([^",]*)"?', challenge[len("digest") :]))
    realm, nonce = fields.get("realm"), fields.get("nonce")
    if realm is None or nonce is None or fields.get("algorithm", "MD5").upper() != "MD5":
        return None

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in fields.get("qop", "").split(","):
        nc, cnonce = "00000001", cnonce or secrets.token_hex(8)
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    parts.append(f'response="{response}"')
    if "opaque" in fields:
        parts.append(f'opaque="{fields["opaque"]}"')
    return "Digest " + ", ".join(parts)


def _rtsp_status(url: str, timeout: float) -> tuple[int, str]:
    """Status and reason of an RTSP DESCRIBE of `url`, logging in (Basic or Digest) if it has
    credentials; the request line never carries them."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or RTSP_PORT
    bare = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, parts.query, ""))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password or "")

    def describe(auth: str | None) -> tuple[int, str, dict[str, str]]:
        lines = [f"DESCRIBE {bare} RTSP/1.0", "CSeq: 1", "Accept: application/sdp"]
        if auth is not None:
            lines.append(f"Authorization: {auth}")
        # A connection per request: whatever body an answer has is never mistaken for the next.
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            return _parse_head(_read_head(sock))

    # Ask without credentials first: the challenge says whether the camera wants Digest, and
    # a Basic password (plain text on the wire) is only sent to a camera that asks for Basic.
    status, reason, headers = describe(None)
    if status == 401 and user is not None:
        challenges = headers.get("www-authenticate", "").split("\n")
        answers = [digest_authorization(c, user, password, "DESCRIBE", bare) for c in challenges]
        digest = next((a for a in answers if a is not None), None)
        if digest is not None:
            status, reason, _ = describe(digest)
        elif any(c.lower().startswith("basic") for c in challenges):
            status, reason, _ = describe(_basic_auth(user, password)["Authorization"])
    return status, reason


def diagnose_url(url: str, timeout_s: float) -> FeedProblem:
    """Why `url` (rtsp/http/https) gives no stream: asked of the camera itself, after OpenCV failed.

    OpenCV only says "not opened"; a duty officer needs to know whether the camera is off the
    network, refuses the password or has no such stream. One request, `timeout_s` at most.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    unreachable = FeedProblem(
        "unreachable",
        "无法连接摄像机（断电、断网或地址错误）",
        "cannot reach the camera (power, network or address)",
    )
    no_video = FeedProblem(
        "no_video",
        "摄像机在线，但取不到可解码的视频",
        "the camera answers but sends no decodable video",
    )
    if scheme not in ("rtsp", "http", "https") or not parts.hostname:
        return FeedProblem("unknown", "视频流打不开", "the stream did not open")
    user = unquote(parts.username) if parts.username is not None else None
    headers = _basic_auth(user, unquote(parts.password or ""))
    try:
        if scheme == "rtsp":
            status, reason = _rtsp_status(url, timeout_s)
        else:
            conn_cls = (
                http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            )
            conn = conn_cls(parts.hostname, parts.port, timeout=timeout_s)
            try:
                path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                status, reason = response.status, response.reason
            finally:
                conn.close()
    except (OSError, ValueError, http.client.HTTPException):
        return unreachable
    return _problem_for_status(status, reason) or no_video
