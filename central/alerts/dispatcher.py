"""Turns a stored anomaly into one SMS row per duty phone, then sends the rows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import EventKind, EventPayload, Severity
from central import messages
from central.alerts import SmsBackend, SmsError
from central.config import CentralConfig
from central.db.models import SMS_FAILED, SMS_PENDING, SMS_SENDING, SMS_SENT, SmsMessage

log = logging.getLogger(__name__)

# A failed SMS is retried on later dispatch rounds up to this many attempts, then left for a human.
MAX_SMS_ATTEMPTS = 5


class AlertDispatcher:
    """Queues SMS rows in the caller's transaction (so they commit with the event) and sends them.

    Rows are unique per (event, phone) and claimed with a conditional UPDATE before sending, so
    two ingest workers never send the same message twice.
    """

    def __init__(
        self,
        *,
        config: CentralConfig,
        session_factory: sessionmaker[Session],
        backend: SmsBackend,
    ) -> None:
        self._config = config
        self._session_factory = session_factory
        self._backend = backend
        self._tz = ZoneInfo(config.timezone)
        self._min_rank = Severity(config.alerts.min_severity).rank

    def wants(self, event: EventPayload) -> bool:
        """True when this event must page the duty officers."""
        return event.kind is EventKind.ANOMALY and event.severity.rank >= self._min_rank

    def text_for(self, event: EventPayload) -> str:
        """The SMS text for an event (from the message catalogue)."""
        site = self._config.sites.get(event.site)
        return messages.sms_alert(
            site_zh=site.name_zh if site else event.site,
            camera=event.camera,
            local_time=event.captured_at.astimezone(self._tz),
            rule=event.rule,
            category=event.category.value,
            species_zh=(event.species.chinese_name or event.species.scientific_name)
            if event.species
            else None,
            count=event.count,
            confidence=event.confidence,
            severity=event.severity.value,
        )

    def enqueue(self, session: Session, *, event: EventPayload) -> int:
        """Add pending SMS rows for the event to `session` (not committed); returns how many."""
        if not self.wants(event):
            return 0
        phones = list(dict.fromkeys(self._config.alerts.duty_phones))
        if not phones:
            log.warning("anomaly %s needs an SMS but no duty_phones are configured", event.event_id)
            return 0
        text = self.text_for(event)
        now = datetime.now(UTC)
        for phone in phones:
            session.add(
                SmsMessage(
                    event_id=str(event.event_id),
                    phone=phone,
                    text=text,
                    created_at=now,
                    status=SMS_PENDING,
                    attempts=0,
                )
            )
        return len(phones)

    def send_pending(self, limit: int = 100) -> int:
        """Send pending (and retryable failed) SMS; returns how many were sent."""
        with self._session_factory() as session:
            ids = session.scalars(
                sa.select(SmsMessage.id)
                .where(
                    SmsMessage.status.in_([SMS_PENDING, SMS_FAILED]),
                    SmsMessage.attempts < MAX_SMS_ATTEMPTS,
                )
                .order_by(SmsMessage.id)
                .limit(limit)
            ).all()
        return sum(1 for sms_id in ids if self._send_one(sms_id))

    def dispatch(self, event: EventPayload) -> int:
        """Queue and send in one go (for callers outside the ingest transaction)."""
        with self._session_factory.begin() as session:
            queued = self.enqueue(session, event=event)
        return self.send_pending() if queued else 0

    def _send_one(self, sms_id: int) -> bool:
        with self._session_factory.begin() as session:
            claimed = cast(
                CursorResult[Any],
                session.execute(
                    sa.update(SmsMessage)
                    .where(
                        SmsMessage.id == sms_id, SmsMessage.status.in_([SMS_PENDING, SMS_FAILED])
                    )
                    .values(status=SMS_SENDING, attempts=SmsMessage.attempts + 1)
                ),
            )
            if claimed.rowcount != 1:
                return False  # another worker has it
            sms = session.get_one(SmsMessage, sms_id)
            phone, text = sms.phone, sms.text
        error: str | None = None
        try:
            self._backend.send(phone, text)
        except SmsError as exc:
            error = str(exc)
            log.error("SMS %s to %s failed: %s", sms_id, phone, exc)
        with self._session_factory.begin() as session:
            session.execute(
                sa.update(SmsMessage)
                .where(SmsMessage.id == sms_id)
                .values(
                    status=SMS_FAILED if error else SMS_SENT,
                    sent_at=None if error else datetime.now(UTC),
                    error=error,
                )
            )
        return error is None
