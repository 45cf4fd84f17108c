"""SMS providers for duty alerting: the one interface cloud SMS services and a GSM modem share.

Chinese SMS rules shape it: a cloud provider sends only approved templates (a template code,
the station's signature, typed variables with no links), caps what one number may receive, and
reports delivery later (push callbacks or pull queries); sends are not idempotent, so a send that
timed out is checked against receipts before it is tried again. A modem sends free text (PDU,
UCS-2 for Chinese) and reports delivery with +CDS status reports.

Each provider lives in its own module (`aliyun.py`, `tencent.py`, `modem.py`) with its settings
model and its callback parsers; the alerting core only sees this interface.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class DeliveryState(StrEnum):
    """Where one message is: handed to the provider, on the handset, or lost."""

    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """One message to one number.

    `template` is our template key (e.g. "alert", "reminder", "ack_notice"); a cloud provider
    maps it to its approved template code and sends `params` as the template's variables; a
    modem (or the file back-end) sends `text`, the same message rendered in full.
    `reference` is our own id of the message (unique; providers that take a caller reference,
    such as Aliyun's OutId or Tencent's SessionContext, carry it so receipts can be matched).
    """

    phone: str
    template: str
    params: Mapping[str, str]
    text: str
    reference: str


@dataclass(frozen=True, slots=True)
class Submitted:
    """The provider took the message: its own id, to match receipts with."""

    provider: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a provider reported about one message (push callback, pull query or +CDS)."""

    provider: str
    message_id: str
    phone: str
    state: DeliveryState
    code: str = ""  # the provider's own status or error code, kept as given
    at: datetime | None = None
    reference: str = ""  # our reference when the provider echoes it


@dataclass(frozen=True, slots=True)
class Reply:
    """A message a person sent back (uplink): how duty officers acknowledge ("1 3527")."""

    provider: str
    phone: str
    text: str
    at: datetime | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


class ProviderError(Exception):
    """A send or query failed. `retryable`: the same message may be tried again later (5xx,
    throttling); otherwise not (a refused template, an invalid number). `uncertain`: the request
    may have reached the provider (a timeout after sending), so receipts must be checked before
    any retry. `code` is the provider's error code when it gave one."""

    def __init__(
        self, message: str, *, code: str = "", retryable: bool, uncertain: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.uncertain = uncertain


def callback_items(body: bytes, what: str) -> list[dict[str, Any]]:
    """The objects of a provider's JSON push (an array; a lone object is taken as one);
    ValueError saying what is wrong otherwise."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} push is not UTF-8 JSON: {exc}") from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError(f"{what} push must be a JSON array, got {type(data).__name__}")
    items: list[dict[str, Any]] = []
    for item in data:
        if not isinstance(item, dict):
            raise ValueError(f"{what} push item is not an object: {item!r}")
        items.append(item)
    return items


@runtime_checkable
class SmsProvider(Protocol):
    """A way to send SMS and learn their fate."""

    key: str

    def submit(self, sms: OutgoingSms) -> Submitted:
        """Hand one message to the provider; ProviderError when it did not take it."""

    def receipts(self, *, since: datetime, phones: list[str]) -> list[Receipt]:
        """Delivery receipts since `since` (pull), for these numbers where the provider's
        query needs a number; [] for providers that only push."""


@runtime_checkable
class DeviceProvider(SmsProvider, Protocol):
    """A provider that is hardware on this machine (a modem). The pager opens it at start,
    opens it again every `reopen_every_s` while it is gone (unplugged, a USB reset), collects
    the replies it received, and closes it at stop."""

    @property
    def alive(self) -> bool:
        """True while it can send."""

    @property
    def reopen_every_s(self) -> float:
        """How often to try to open it again while it is not alive."""

    def start(self) -> None:
        """Open it; ProviderError when it cannot be opened now."""

    def close(self) -> None:
        """Close it (idempotent)."""

    def replies(self) -> list[Reply]:
        """Messages received since the last call, each returned once."""


__all__ = [
    "DeliveryState",
    "DeviceProvider",
    "OutgoingSms",
    "ProviderError",
    "Receipt",
    "Reply",
    "SmsProvider",
    "Submitted",
    "callback_items",
]
