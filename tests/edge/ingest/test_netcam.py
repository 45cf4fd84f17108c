"""Diagnosis of HTTP cameras against a real local HTTP server, and the Digest answer itself."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edge.ingest.netcam import diagnose_url, digest_authorization
from tests.helpers import free_port

LOGIN = base64.b64encode(b"ranger:p@ss word").decode()


@pytest.fixture()
def http_camera() -> Iterator[int]:
    """An MJPEG-style camera: /video.mjpg behind Basic auth, 404 elsewhere, 500 on /broken."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/broken":
                self.send_error(500)
            elif self.path != "/video.mjpg":
                self.send_error(404)
            elif self.headers.get("Authorization") != f"Basic {LOGIN}":
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="cam"')
                self.end_headers()
            else:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port
    server.shutdown()
    server.server_close()


def test_http_causes(http_camera: int) -> None:
    base = f"127.0.0.1:{http_camera}"
    # The password is percent-encoded in the URL, as in the node's config.
    assert diagnose_url(f"http://ranger:p%40ss%20word@{base}/video.mjpg", 3).code == "no_video"
    assert diagnose_url(f"http://ranger:wrong@{base}/video.mjpg", 3).code == "unauthorized"
    assert diagnose_url(f"http://{base}/video.mjpg", 3).code == "unauthorized"
    assert diagnose_url(f"http://ranger:p%40ss%20word@{base}/cam1", 3).code == "not_found"
    broken = diagnose_url(f"http://{base}/broken", 3)
    assert broken.code == "refused" and "500" in broken.en and "500" in broken.zh
    assert diagnose_url(f"http://127.0.0.1:{free_port()}/video.mjpg", 3).code == "unreachable"
    assert diagnose_url("udp://239.0.0.1:1234", 3).code == "unknown"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_digest_answer_matches_rfc_2617() -> None:
    """The worked example of RFC 2617 section 3.5, with its client nonce."""
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    header = digest_authorization(
        challenge, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", cnonce="0a4f113b"
    )
    assert header is not None and header.startswith("Digest ")
    fields = dict(part.split("=", 1) for part in header.removeprefix("Digest ").split(", "))
    assert fields["response"] == '"6629fae49393a05397450978507c4ef1"'
    assert fields["qop"] == "auth" and fields["nc"] == "00000001"
    assert fields["opaque"] == '"5ccc069c403ebaf9f0171e9517f40e41"'
    # Without a fixed client nonce each answer uses a fresh one.
    a = digest_authorization(challenge, "Mufasa", "Circle Of Life", "GET", "/dir/index.html")
    b = digest_authorization(challenge, "Mufasa", "Circle Of Life", "GET", "/dir/index.html")
    assert a is not None and b is not None and a != b


def test_digest_without_qop_and_unsupported_challenges() -> None:
    uri, challenge = "rtsp://h/s", 'Digest realm="IP Camera", nonce="abc"'
    header = digest_authorization(challenge, "u", "p", "DESCRIBE", uri)
    assert header is not None
    ha1, ha2 = md5("u:IP Camera:p"), md5(f"DESCRIBE:{uri}")
    assert f'response="{md5(f"{ha1}:abc:{ha2}")}"' in header and "qop" not in header
    assert digest_authorization('Basic realm="x"', "u", "p", "GET", "/") is None
    sha = 'Digest realm="x", nonce="n", algorithm=SHA-256'
    assert digest_authorization(sha, "u", "p", "GET", "/") is None
