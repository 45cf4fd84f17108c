"""The two roads a report takes to the bureau, each a function `send(package, target) -> receipt`.

- smtp: one mail with the PDF, XLSX and JSON attached, through the station's mail server with
  STARTTLS and login (stdlib smtplib: the standard, well-kept client). The Message-ID is derived
  from the idempotency key, so a mail resent after an unclear failure is the same message to
  the bureau's mail system; it is the receipt kept.
- http: one multipart POST to the bureau's endpoint (httpx): fields `idempotency_key`, `site`,
  `station_code`, `report_date`, `signed`, `manifest` (JSON: file name -> sha256 and size) and
  the files under `files`; headers `Authorization: Bearer <token>` and `Idempotency-Key`. A 2xx
  answer carries JSON `{"receipt_id": "..."}`, the receipt kept; the endpoint answers a repeated
  key with the receipt it gave first, so the bureau files one report however often it is sent.

Every failure is a DeliveryError with a short reason (stored with the attempt); none is fatal.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from central.reports.settings import HttpTarget, SmtpTarget, secret

MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".json": "application/json",
}


RECEIPT_MAX = 255  # report_deliveries.receipt


class DeliveryError(RuntimeError):
    """One try failed; the report is tried again later."""


@dataclass(frozen=True, slots=True)
class PackedFile:
    name: str
    path: Path
    sha256: str
    size: int

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(self.path.suffix, "application/octet-stream")


@dataclass(frozen=True, slots=True)
class Package:
    """One site's report of one day as prepared at the cut-off (the same bytes on every try)."""

    site: str
    station_code: str
    day: date
    key: str
    signed: bool
    subject: str
    body: str
    files: tuple[PackedFile, ...]
    prepared_at: datetime

    def read(self, file: PackedFile) -> bytes:
        """The file's bytes, checked against the sha256 taken when it was prepared."""
        import hashlib

        try:
            data = file.path.read_bytes()
        except OSError as exc:
            raise DeliveryError(f"{file.name} unreadable: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != file.sha256:
            raise DeliveryError(f"{file.name} changed since it was prepared (sha256 differs)")
        return data


def _tls(ca_file: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def message_id(package: Package, sender: str) -> str:
    return f"<{package.key}@{sender.rsplit('@', 1)[1]}>"


def send_smtp(package: Package, target: SmtpTarget) -> str:
    """Mail the report; the Message-ID is the receipt."""
    msg = EmailMessage()
    msg["Subject"] = package.subject
    msg["From"] = target.sender
    msg["To"] = ", ".join(target.to)
    if target.cc:
        msg["Cc"] = ", ".join(target.cc)
    msg["Date"] = format_datetime(package.prepared_at)
    msg["Message-ID"] = message_id(package, target.sender)
    msg["X-WildWatch-Idempotency-Key"] = package.key
    msg.set_content(package.body)
    for file in package.files:
        maintype, subtype = file.media_type.split("/", 1)
        msg.add_attachment(
            package.read(file), maintype=maintype, subtype=subtype, filename=file.name
        )
    try:
        password = secret(target.password_env, "report.delivery.smtp.password_env")
        with smtplib.SMTP(target.host, target.port, timeout=target.timeout_s) as smtp:
            smtp.ehlo()
            if target.starttls:
                if not smtp.has_extn("starttls"):
                    raise DeliveryError("mail server offers no STARTTLS; refusing to send in clear")
                smtp.starttls(context=_tls(target.ca_file))
                smtp.ehlo()
            if target.username:
                smtp.login(target.username, password or "")
            refused = smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"mail login refused: {exc.smtp_code} {exc.smtp_error!r}") from exc
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"mail server answered {exc.smtp_code} {exc.smtp_error!r}") from exc
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        raise DeliveryError(f"mail: {type(exc).__name__}: {exc}") from exc
    receipt = str(msg["Message-ID"])
    if refused:  # the server took the mail for the others: resending would mail them again
        return f"{receipt} (refused: {', '.join(sorted(refused))})"[:RECEIPT_MAX]
    return receipt


def send_http(package: Package, target: HttpTarget) -> str:
    """Upload the report; the bureau's receipt id is the receipt."""
    import httpx

    manifest = {f.name: {"sha256": f.sha256, "size": f.size} for f in package.files}
    data = {
        "idempotency_key": package.key,
        "site": package.site,
        "station_code": package.station_code,
        "report_date": package.day.isoformat(),
        "signed": "true" if package.signed else "false",
        "manifest": json.dumps(manifest, ensure_ascii=False),
    }
    files = [("files", (f.name, package.read(f), f.media_type)) for f in package.files]
    headers = {"Idempotency-Key": package.key}
    try:
        token = secret(target.token_env, "report.delivery.http.token_env")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        verify: Any = _tls(target.ca_file) if target.ca_file else True
        response = httpx.post(
            target.url,
            data=data,
            files=files,
            headers=headers,
            timeout=target.timeout_s,
            verify=verify,
        )
    except (httpx.HTTPError, OSError, ValueError) as exc:
        raise DeliveryError(f"upload: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        raise DeliveryError(f"upload: HTTP {response.status_code} {response.text[:200]!r}")
    try:
        receipt = response.json()["receipt_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DeliveryError(f"upload: answer without receipt_id: {response.text[:200]!r}") from exc
    if not isinstance(receipt, str) or not receipt:
        raise DeliveryError(f"upload: empty receipt_id: {response.text[:200]!r}")
    return receipt[:RECEIPT_MAX]  # the column holds 255; the bureau filed it either way


Sender = Callable[[Package, Any], str]
CHANNELS: dict[str, Sender] = {"smtp": send_smtp, "http": send_http}
