"""SMS back-end that appends one JSON line per message to a file (development, demos, audits)."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from central.alerts import SmsError, register_backend
from central.alerts.providers import OutgoingSms, ProviderError, Receipt, Submitted
from central.config import CentralConfig


class FileSmsBackend:
    """Appends {"time", "phone", "text"} lines and fsyncs, so a line on disk means 'sent'."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, phone: str, text: str) -> None:
        """Append the message to the file."""
        line = json.dumps(
            {"time": datetime.now(UTC).isoformat(), "phone": phone, "text": text},
            ensure_ascii=False,
        )
        self.append(line)

    def append(self, line: str) -> None:
        """Append one line and fsync it; SmsError when the file cannot be written."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise SmsError(f"cannot write SMS file {self.path}: {exc}") from exc


@register_backend("file")
def _from_config(config: CentralConfig) -> FileSmsBackend:
    return FileSmsBackend(config.sms_file)


class FileProvider:
    """The file back-end as an alerting provider: one JSON line per message (template, its
    variables, the full text and our reference), fsynced; its message id is the reference."""

    key = "file"

    def __init__(self, path: Path) -> None:
        self._backend = FileSmsBackend(path)
        self.path = path

    def submit(self, sms: OutgoingSms) -> Submitted:
        line = json.dumps(
            {
                "time": datetime.now(UTC).isoformat(),
                "phone": sms.phone,
                "template": sms.template,
                "params": dict(sms.params),
                "text": sms.text,
                "reference": sms.reference,
            },
            ensure_ascii=False,
        )
        try:
            self._backend.append(line)
        except SmsError as exc:
            raise ProviderError(str(exc), code="file", retryable=True) from exc
        return Submitted(provider=self.key, message_id=sms.reference)

    def receipts(self, *, since: datetime, phones: list[str]) -> list[Receipt]:
        return []  # a file never learns whether anyone read it
