"""A mail server on loopback: aiosmtpd with STARTTLS (the development certificates of
broker.certs) and AUTH LOGIN/PLAIN, required before a message is taken, as a provincial mail
server is set up. Messages are kept as parsed email.message.EmailMessage objects.

Faults: `refuse_next(n, code)` answers the next n DATA commands with an error (e.g. 451 or
554), `stop()`/`start()` take it down and bring it back on the same port.

    with MailServer(cert_dir, user="station", password="s3cret") as mail:
        SmtpTarget(host="127.0.0.1", port=mail.port, ca_file=mail.ca_file, ...)
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from broker.certs import dev_certs
from tests.helpers import free_port


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_DATA(self, _smtp: SMTP, session: Session, envelope: Envelope) -> str:
        with self.server.lock:
            if self.server.refusals:
                code = self.server.refusals.pop(0)
                return f"{code} refused for the test"
            raw = envelope.original_content or envelope.content
            assert isinstance(raw, bytes)
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self.server.messages.append(message)
            self.server.recipients.append(list(envelope.rcpt_tos))
            self.server.tls_used.append(session.ssl is not None)
        return "250 Message accepted for delivery"


class MailServer:
    def __init__(self, cert_dir: Path, *, user: str, password: str) -> None:
        certs = dev_certs(cert_dir)
        self.ca_file = certs["ca.crt"]
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(certs["server.crt"], certs["server.key"])
        self.user, self.password = user, password
        self.port = free_port()
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.tls_used: list[bool] = []
        self.refusals: list[int] = []
        self.logins: list[tuple[str, bool]] = []
        self._controller: Controller | None = None

    def _authenticate(
        self, _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and data.password.decode() == self.password
        )
        with self.lock:
            self.logins.append((data.login.decode() if isinstance(data, LoginPassword) else "", ok))
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself

    def start(self) -> None:
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="localhost",
            tls_context=self._tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=self._authenticate,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse_next(self, n: int, code: int = 451) -> None:
        with self.lock:
            self.refusals += [code] * n

    def __enter__(self) -> MailServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
