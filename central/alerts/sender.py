"""Sends the alert notifications the lifecycle stored (central/alerting.py) through the
configured providers, in order (cloud first, modem second), and keeps each message's fate.

- Per-number caps are checked before sending (the providers' own daily limits, e.g. Aliyun 50
  per number and template, Tencent 10 per number): a message that would pass one is not sent,
  its state says `capped`, and the log says so; escalation reaches other people instead.
- A provider that fails in a way a retry may cure passes the message to the next provider.
- A send that may have reached the provider (a timeout after sending) is `uncertain`: it is not
  sent again until receipts show it never arrived (sends are not idempotent).
- Receipts (push callbacks, pull queries, modem +CDS) move a message to delivered or failed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from central.alerts.providers import (
    DeliveryState,
    OutgoingSms,
    ProviderError,
    Receipt,
    SmsProvider,
)
from central.db.models import Alert, AlertNotification

log = logging.getLogger(__name__)

PENDING, SENDING, SUBMITTED, DELIVERED, FAILED, CAPPED, UNCERTAIN, CANCELLED = (
    "pending",
    "sending",
    "submitted",
    "delivered",
    "failed",
    "capped",
    "uncertain",
    "cancelled",
)
SENT_STATES = (SUBMITTED, DELIVERED, UNCERTAIN)
MAX_ATTEMPTS = 8
RETRY_PAUSE = timedelta(minutes=2)
# An uncertain send with no receipt after this long is taken as lost and sent again.
UNCERTAIN_AFTER = timedelta(minutes=10)
# Template variables stay short: cloud providers cap a variable's length (Tencent 12 characters
# for most types, Aliyun 35) and refuse links in them.
VARIABLE_MAX = 12


@dataclass(frozen=True, slots=True)
class Caps:
    """How many messages one number may receive per local day (all providers together)."""

    per_number_per_day: int = 10


def _short(text: str, limit: int = VARIABLE_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(
    alert: Alert, site_name: str, template: str = "alert", who: str = ""
) -> tuple[dict[str, str], str]:
    """Template variables and the full text of a message (Chinese): "alert" (with the code to
    reply) or "ack_notice" (who took the alert)."""
    if template == "reminder":
        params = {"site": _short(site_name), "what": _short(alert.title_zh or alert.rule)}
        return params, (
            f"【WildWatch】快报提醒：{site_name}{alert.title_zh or alert.rule}"
            "须在确认后2小时内上报，请尽快完成。"
        )
    if template == "report_notice":
        params = {"site": _short(site_name), "what": _short(alert.title_zh or alert.rule)}
        return params, f"【WildWatch】{site_name}：{alert.title_zh or alert.rule}"
    if template == "ack_notice":
        params = {"who": _short(who), "code": alert.ack_code}
        return params, f"【WildWatch】告警 {alert.ack_code} 已由 {who} 接警，无需再回复。"
    params = {
        "site": _short(site_name),
        "what": _short(alert.title_zh or alert.rule),
        "count": str(alert.event_count),
        "code": alert.ack_code,
    }
    text = (
        f"【WildWatch】{site_name}：{alert.title_zh or alert.rule}（共{alert.event_count}起）。"
        f"请回复 1 {alert.ack_code} 确认接警。"
    )
    return params, text


def sent_today(session: Session, phone: str, now: datetime, tz: ZoneInfo) -> int:
    start_local = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tzinfo=tz)
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(AlertNotification)
            .where(
                AlertNotification.phone == phone,
                AlertNotification.sent_at >= start_local,
            )
        )
        or 0
    )


class Sender:
    """Sends pending notifications through `providers` in order."""

    def __init__(
        self,
        providers: Sequence[SmsProvider],
        *,
        site_names: Mapping[str, str],
        tz: ZoneInfo,
        caps: Caps = Caps(),
    ) -> None:
        if not providers:
            raise ValueError("no SMS provider configured")
        self.providers = list(providers)
        self.site_names = dict(site_names)
        self.tz = tz
        self.caps = caps

    def send_pending(
        self, session_factory: sessionmaker[Session], now: datetime, limit: int = 100
    ) -> int:
        """Send what is due, one message at a time: each is claimed (`sending`) and committed
        before the provider is called, and its outcome committed after, so a crash or an error
        never sends twice what a provider took, and no transaction is held over the network."""
        with session_factory() as session:
            ids = session.scalars(
                sa.select(AlertNotification.id)
                .where(
                    AlertNotification.state == PENDING,
                    sa.or_(
                        AlertNotification.attempts == 0,
                        AlertNotification.updated_at.is_(None),
                        AlertNotification.updated_at <= now - RETRY_PAUSE,
                    ),
                )
                .order_by(AlertNotification.id)
                .limit(limit)
            ).all()
        sent = 0
        for row_id in ids:
            try:
                sent += self._send_one(session_factory, row_id, now)
            except Exception:  # one message's trouble never stops the others
                log.exception("alert notification %d could not be sent", row_id)
        return sent

    def _claim(
        self, session_factory: sessionmaker[Session], row_id: int, now: datetime
    ) -> OutgoingSms | None:
        """Mark the row `sending` (only if still pending) and build its message; None when
        another round took it, the alert was taken meanwhile, or a cap holds it back."""
        with session_factory.begin() as session:
            claimed = session.execute(
                sa.update(AlertNotification)
                .where(AlertNotification.id == row_id, AlertNotification.state == PENDING)
                .values(state=SENDING, updated_at=now, attempts=AlertNotification.attempts + 1)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return None
            row = session.get(AlertNotification, row_id)
            alert = session.get(Alert, row.alert_id) if row is not None else None
            assert row is not None and alert is not None
            if row.template == "alert" and alert.state not in ("triggered", "notified"):
                row.state, row.code = CANCELLED, alert.state  # taken or closed meanwhile
                return None
            if sent_today(session, row.phone, now, self.tz) >= self.caps.per_number_per_day:
                row.state, row.code = CAPPED, "daily_cap"
                log.warning(
                    "alert %d: %s (%s) has had %d messages today; not sent (cap)",
                    row.alert_id,
                    row.user_name,
                    row.phone,
                    self.caps.per_number_per_day,
                )
                return None
            params, text = render(
                alert,
                self.site_names.get(alert.site, alert.site),
                row.template,
                who=alert.acked_by or "",
            )
            return OutgoingSms(
                phone=row.phone,
                template=row.template,
                params=params,
                text=text,
                reference=row.reference,
            )

    def _send_one(self, session_factory: sessionmaker[Session], row_id: int, now: datetime) -> int:
        sms = self._claim(session_factory, row_id, now)
        if sms is None:
            return 0
        errors: list[str] = []
        permanent = True
        outcome: dict[str, object] = {}
        for provider in self.providers:
            try:
                submitted = provider.submit(sms)
            except ProviderError as exc:
                errors.append(f"{provider.key}: {exc.code or exc}")
                permanent = permanent and not exc.retryable
                if exc.uncertain:  # it may have gone out: never send it twice
                    outcome = {
                        "state": UNCERTAIN,
                        "provider": provider.key,
                        "code": exc.code,
                        "sent_at": now,
                    }
                    log.warning(
                        "notification %d to %s: %s may have been sent (%s)",
                        row_id,
                        sms.phone,
                        provider.key,
                        exc,
                    )
                    break
                continue  # the next provider (failover)
            outcome = {
                "state": SUBMITTED,
                "provider": submitted.provider,
                "message_id": submitted.message_id,
                "code": None,
                "sent_at": now,
            }
            log.info(
                "notification %d to %s via %s: %s",
                row_id,
                sms.phone,
                submitted.provider,
                submitted.message_id,
            )
            break
        with session_factory.begin() as session:
            row = session.get(AlertNotification, row_id)
            assert row is not None
            row.updated_at = now
            if outcome:
                for key, value in outcome.items():
                    setattr(row, key, value)
                return 1
            row.code = "; ".join(errors)[:64]
            # every provider refused for good, or tries exhausted: failed; else later again
            row.state = FAILED if permanent or row.attempts >= MAX_ATTEMPTS else PENDING
            log.error(
                "notification %d to %s not sent (attempt %d): %s",
                row_id,
                sms.phone,
                row.attempts,
                "; ".join(errors),
            )
            return 0


def recover_interrupted(session: Session, now: datetime) -> int:
    """Rows left `sending` by a process that stopped mid-send: whether the provider took them
    is unknown, so they are uncertain (receipts decide, else they go again later)."""
    result = session.execute(
        sa.update(AlertNotification)
        .where(AlertNotification.state == SENDING)
        .values(state=UNCERTAIN, updated_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def apply_receipt(session: Session, receipt: Receipt, now: datetime) -> bool:
    """Record a receipt (duplicates and late ones are harmless); False when no message matches.
    Our reference, when the provider echoes it, identifies the message alone; a provider's id
    (a modem's wraps at 256) only among that provider's messages of the last days, newest
    first."""
    query = sa.select(AlertNotification)
    if receipt.reference:
        query = query.where(AlertNotification.reference == receipt.reference)
    else:
        query = query.where(
            AlertNotification.provider == receipt.provider,
            AlertNotification.message_id == receipt.message_id,
            AlertNotification.state.in_([SUBMITTED, UNCERTAIN, SENDING, DELIVERED, FAILED]),
            AlertNotification.created_at >= now - timedelta(days=3),
        )
    row = session.scalar(query.order_by(AlertNotification.id.desc()).limit(1).with_for_update())
    if row is None:
        return False
    if row.state == DELIVERED:
        return True  # a later duplicate never undoes a delivery
    if receipt.state is DeliveryState.DELIVERED:
        row.state = DELIVERED
    elif receipt.state is DeliveryState.FAILED:
        row.state = FAILED
    elif row.state in (UNCERTAIN, SENDING):
        row.state = SUBMITTED  # the provider has it after all
    row.provider = row.provider or receipt.provider
    row.code = receipt.code[:64] or row.code
    row.message_id = row.message_id or receipt.message_id
    row.updated_at = now
    return True


def retry_lost(session: Session, now: datetime) -> int:
    """Uncertain sends with no receipt for UNCERTAIN_AFTER are taken as lost: pending again."""
    rows = session.scalars(
        sa.select(AlertNotification).where(
            AlertNotification.state == UNCERTAIN,
            AlertNotification.updated_at <= now - UNCERTAIN_AFTER,
        )
    ).all()
    for row in rows:
        row.updated_at = now
        if row.attempts >= MAX_ATTEMPTS:
            row.state = FAILED
            continue
        row.state = PENDING
        log.warning(
            "alert %d to %s: no receipt for the uncertain send; sending again",
            row.alert_id,
            row.phone,
        )
    return len(rows)
