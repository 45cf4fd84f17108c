"""SMS back-end that appends one JSON line per message to a file (development, demos, audits)."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from central.alerts import SmsError, register_backend
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
