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
from sqlalchemy.orm import Session

from central.alerts.providers import (
    DeliveryState,
    OutgoingSms,
    ProviderError,
    Receipt,
    SmsProvider,
)
from central.db.models import Alert, AlertNotification

log = logging.getLogger(__name__)

PENDING, SUBMITTED, DELIVERED, FAILED, CAPPED, UNCERTAIN = (
    "pending",
    "submitted",
    "delivered",
    "failed",
    "capped",
    "uncertain",
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
                AlertNotification.state.in_(SENT_STATES),
                AlertNotification.updated_at >= start_local,
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

    def send_pending(self, session: Session, now: datetime, limit: int = 100) -> int:
        """Send what is due; returns how many were handed to a provider."""
        rows = session.scalars(
            sa.select(AlertNotification)
            .where(
                AlertNotification.state == PENDING,
                sa.or_(
                    AlertNotification.updated_at.is_(None),
                    AlertNotification.updated_at <= now - RETRY_PAUSE,
                    AlertNotification.attempts == 0,
                ),
            )
            .order_by(AlertNotification.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        sent = 0
        for row in rows:
            if self._send_one(session, row, now):
                sent += 1
        return sent

    def _send_one(self, session: Session, row: AlertNotification, now: datetime) -> bool:
        if sent_today(session, row.phone, now, self.tz) >= self.caps.per_number_per_day:
            row.state, row.code, row.updated_at = CAPPED, "daily_cap", now
            log.warning(
                "alert %d: %s (%s) has had %d messages today; not sent (cap)",
                row.alert_id,
                row.user_name,
                row.phone,
                self.caps.per_number_per_day,
            )
            return False
        alert = session.get(Alert, row.alert_id)
        assert alert is not None
        params, text = render(
            alert,
            self.site_names.get(alert.site, alert.site),
            row.template,
            who=alert.acked_by or "",
        )
        sms = OutgoingSms(
            phone=row.phone,
            template=row.template,
            params=params,
            text=text,
            reference=row.reference,
        )
        row.attempts += 1
        row.updated_at = now
        errors = []
        for provider in self.providers:
            try:
                submitted = provider.submit(sms)
            except ProviderError as exc:
                errors.append(f"{provider.key}: {exc.code or exc}")
                if exc.uncertain:  # it may have gone out: never send it twice
                    row.state, row.provider, row.code = UNCERTAIN, provider.key, exc.code
                    log.warning(
                        "alert %d to %s: %s may have been sent (%s); receipts decide",
                        row.alert_id,
                        row.phone,
                        provider.key,
                        exc,
                    )
                    return True
                continue  # the next provider (failover)
            row.state, row.provider = SUBMITTED, submitted.provider
            row.message_id, row.code = submitted.message_id, None
            log.info(
                "alert %d to %s (%s) via %s: %s",
                row.alert_id,
                row.user_name,
                row.phone,
                submitted.provider,
                submitted.message_id,
            )
            return True
        row.code = "; ".join(errors)[:64]
        if row.attempts >= MAX_ATTEMPTS:
            row.state = FAILED
        log.error(
            "alert %d to %s not sent (attempt %d): %s",
            row.alert_id,
            row.phone,
            row.attempts,
            "; ".join(errors),
        )
        return False


def apply_receipt(session: Session, receipt: Receipt, now: datetime) -> bool:
    """Record a receipt (duplicates and late ones are harmless); False when no message matches."""
    match = [AlertNotification.provider == receipt.provider]
    if receipt.reference:
        match.append(AlertNotification.reference == receipt.reference)
    else:
        match.append(AlertNotification.message_id == receipt.message_id)
    row = session.scalar(sa.select(AlertNotification).where(*match).with_for_update())
    if row is None:
        return False
    if row.state == DELIVERED:
        return True  # a later duplicate never undoes a delivery
    if receipt.state is DeliveryState.DELIVERED:
        row.state = DELIVERED
    elif receipt.state is DeliveryState.FAILED:
        row.state = FAILED
    elif row.state == UNCERTAIN:
        row.state = SUBMITTED  # the provider has it after all
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
        row.state, row.updated_at = PENDING, now
        log.warning(
            "alert %d to %s: no receipt for the uncertain send; sending again",
            row.alert_id,
            row.phone,
        )
    return len(rows)
