"""Turns a stored anomaly into one SMS row per duty phone, then sends the rows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import EventKind, EventPayload, Severity
from central import messages
from central.alerts import SmsBackend, SmsError
from central.config import CentralConfig
from central.db.models import SMS_FAILED, SMS_PENDING, SMS_SENDING, SMS_SENT, SmsMessage

if TYPE_CHECKING:
    from central.alerts.pager import Pager

log = logging.getLogger(__name__)

# A failed SMS is tried again on later rounds (central's monitor runs one every
# monitor.check_interval_s) after a pause that doubles from SMS_RETRY_MIN_S up to SMS_RETRY_MAX_S,
# MAX_SMS_ATTEMPTS tries in all: 30 s, 1, 2, 4, 8, 10, 10 min, so the last try is about 35 min
# after the first, well inside the 2-hour deadline of an express report. Shorter pauses would
# hammer a gateway that is down; more tries would hide a lasting fault that a person must fix.
MAX_SMS_ATTEMPTS = 8
SMS_RETRY_MIN_S = 30.0
SMS_RETRY_MAX_S = 600.0


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
        max_attempts: int | None = None,
        retry_min_s: float | None = None,
        retry_max_s: float | None = None,
    ) -> None:
        self._config = config
        self._session_factory = session_factory
        self._backend = backend
        # The module constants are read here, not as defaults, so a test can set them small.
        self._max_attempts = MAX_SMS_ATTEMPTS if max_attempts is None else max_attempts
        self._retry_min_s = SMS_RETRY_MIN_S if retry_min_s is None else retry_min_s
        self._retry_max_s = SMS_RETRY_MAX_S if retry_max_s is None else retry_max_s
        self._tz = ZoneInfo(config.timezone)
        self._min_rank = Severity(config.alerts.min_severity).rank
        self.pager: Pager | None = None  # set by the service when alerts.escalation is on

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
        """Add pending SMS rows for the event to `session` (not committed); returns how many.
        With a duty pager (alerts.escalation), the event joins its alert instead, and the
        pager's own loop sends (1 when it joined or opened an alert, so that ingest wakes the
        pager once the transaction committed)."""
        if self.pager is not None:
            return int(self.pager.observe(session, event, datetime.now(UTC)))
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

    def _sendable(self, now: datetime) -> sa.ColumnElement[bool]:
        """New rows, and failed ones whose pause is over and that have tries left."""
        return sa.or_(
            SmsMessage.status == SMS_PENDING,
            sa.and_(
                SmsMessage.status == SMS_FAILED,
                SmsMessage.attempts < self._max_attempts,
                sa.or_(SmsMessage.next_attempt_at.is_(None), SmsMessage.next_attempt_at <= now),
            ),
        )

    def send_pending(self, limit: int = 100, *, now: datetime | None = None) -> int:
        """Send pending SMS and failed ones due for another try; returns how many were sent."""
        now = now or datetime.now(UTC)
        if self.pager is not None:
            self.pager.wake()  # what ingest just committed pages now, not in up to a second
        with self._session_factory() as session:
            ids = session.scalars(
                sa.select(SmsMessage.id)
                .where(self._sendable(now))
                .order_by(SmsMessage.id)
                .limit(limit)
            ).all()
        return sum(1 for sms_id in ids if self._send_one(sms_id, now))

    def recover_interrupted(self) -> int:
        """Make rows left 'sending' by a process that died mid-send pending again (start-up only).

        Whether such an SMS reached the gateway is unknown; a duty officer paged twice is
        better than one never paged.
        """
        with self._session_factory.begin() as session:
            result = cast(
                CursorResult[Any],
                session.execute(
                    sa.update(SmsMessage)
                    .where(SmsMessage.status == SMS_SENDING)
                    .values(status=SMS_PENDING)
                ),
            )
        if result.rowcount:
            log.warning(
                "%d SMS interrupted mid-send by a stop; sending them again", result.rowcount
            )
        return int(result.rowcount)

    def dispatch(self, event: EventPayload) -> int:
        """Queue and send in one go (for callers outside the ingest transaction)."""
        with self._session_factory.begin() as session:
            queued = self.enqueue(session, event=event)
        return self.send_pending() if queued else 0

    def _send_one(self, sms_id: int, now: datetime) -> bool:
        with self._session_factory.begin() as session:
            claimed = cast(
                CursorResult[Any],
                session.execute(
                    sa.update(SmsMessage)
                    .where(SmsMessage.id == sms_id, self._sendable(now))
                    .values(status=SMS_SENDING, attempts=SmsMessage.attempts + 1)
                ),
            )
            if claimed.rowcount != 1:
                return False  # another worker has it
            sms = session.get_one(SmsMessage, sms_id)
            phone, text, attempts = sms.phone, sms.text, sms.attempts
        error: str | None = None
        try:
            self._backend.send(phone, text)
        except SmsError as exc:
            error = str(exc) or type(exc).__name__
            log.error("SMS %s to %s failed (try %d): %s", sms_id, phone, attempts, exc)
        except Exception as exc:  # a back-end bug must not stop the other rows or leave 'sending'
            error = f"{type(exc).__name__}: {exc}"
            log.exception("SMS %s to %s: the back-end failed unexpectedly", sms_id, phone)
        retry_at = None
        if error is not None:
            pause = min(self._retry_min_s * 2 ** min(attempts - 1, 30), self._retry_max_s)
            retry_at = now + timedelta(seconds=pause)
            if attempts >= self._max_attempts:
                log.error("SMS %s to %s: giving up after %d tries", sms_id, phone, attempts)
        with self._session_factory.begin() as session:
            session.execute(
                sa.update(SmsMessage)
                .where(SmsMessage.id == sms_id)
                .values(
                    status=SMS_FAILED if error else SMS_SENT,
                    sent_at=None if error else datetime.now(UTC),
                    error=error,
                    next_attempt_at=retry_at,
                )
            )
        return error is None
