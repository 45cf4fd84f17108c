"""The provincial bureau's report upload endpoint on loopback (what report.delivery.http posts to).

A ThreadingHTTPServer on 127.0.0.1 that takes the multipart POST of central/reports/channels.py:
it checks the bearer token, parses the form (email's MIME parser), checks each file's sha256 and
size against the manifest, files one report per idempotency key and answers
{"receipt_id": ...}; a repeated key gets the receipt it was given first.

Faults, driven by the test: `down` until `start()` is called (the port is reserved but nothing
listens), `fail_next(n, status)` answers 5xx, `slow_next(n, seconds)` files the report and holds
the answer back (the client times out, then sends again).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.helpers import free_port


@dataclass
class Filed:
    """One report the bureau has filed."""

    key: str
    receipt_id: str
    fields: dict[str, str]
    files: dict[str, bytes]


@dataclass
class Seen:
    """One request as received, and the status answered."""

    key: str
    status: int
    authorized: bool


@dataclass
class BureauEndpoint:
    token: str
    port: int = field(default_factory=free_port)
    filed: dict[str, Filed] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/reports"

    def fail_next(self, n: int, status: int = 503) -> None:
        with self.lock:
            self.failures += [status] * n

    def slow_next(self, n: int, seconds: float) -> None:
        with self.lock:
            self.delays += [seconds] * n

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)  # fails when the client gave up waiting

            def do_POST(self) -> None:
                endpoint.handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def handle(self, request: Any) -> None:
        length = int(request.headers.get("Content-Length", "0"))
        body = request.rfile.read(length)
        key = request.headers.get("Idempotency-Key", "")
        authorized = request.headers.get("Authorization") == f"Bearer {self.token}"
        with self.lock:
            failure = self.failures.pop(0) if self.failures else None
            delay = self.delays.pop(0) if self.delays and failure is None else 0.0
        if not authorized:
            return self._record(request, key, 401, {"error": "bad token"}, authorized)
        if failure is not None:
            return self._record(request, key, failure, {"error": "injected"}, authorized)
        fields, files = _parse(request.headers.get("Content-Type", ""), body)
        manifest = json.loads(fields.get("manifest", "{}"))
        for name, data in files.items():
            wanted = manifest.get(name, {})
            if hashlib.sha256(data).hexdigest() != wanted.get("sha256") or len(data) != wanted.get(
                "size"
            ):
                return self._record(request, key, 422, {"error": f"{name}: sha256"}, authorized)
        if set(files) != set(manifest) or fields.get("idempotency_key") != key:
            return self._record(request, key, 422, {"error": "manifest"}, authorized)
        with self.lock:
            filed = self.filed.get(key)
            if filed is None:
                filed = Filed(key, f"R-{uuid.uuid4().hex[:12]}", fields, files)
                self.filed[key] = filed
        time.sleep(delay)
        return self._record(request, key, 201, {"receipt_id": filed.receipt_id}, authorized)

    def _record(
        self, request: Any, key: str, status: int, body: dict[str, Any], authorized: bool
    ) -> None:
        with self.lock:
            self.seen.append(Seen(key, status, authorized))
        request._answer(status, body)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> BureauEndpoint:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _parse(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """(fields, files) of a multipart/form-data body."""
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes) and isinstance(name, str)
        if filename:
            files[filename] = payload
        else:
            fields[name] = payload.decode()
    return fields, files
