"""A stand-in for central's SMS callback endpoint, for provider tests: a real local HTTP server
that parses what a provider pushes with that provider's parsers and answers as it documents."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from central.alerts.providers import Receipt, Reply


class CallbackReceiver:
    """POSTs to `receipt_path` are receipts, any other path replies."""

    def __init__(
        self,
        *,
        receipt_path: str,
        parse_receipts: Callable[[bytes], list[Receipt]],
        parse_replies: Callable[[bytes], list[Reply]],
        answer: Mapping[str, object],
    ) -> None:
        self.receipts: list[Receipt] = []
        self.replies: list[Reply] = []
        owner = self
        body_out = json.dumps(dict(answer), ensure_ascii=False).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == receipt_path:
                    owner.receipts.extend(parse_receipts(body))
                else:
                    owner.replies.extend(parse_replies(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body_out)))
                self.end_headers()
                self.wfile.write(body_out)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
