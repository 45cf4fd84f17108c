"""Alert lifecycle (告警): anomalies grouped into incidents, escalated along the duty roster until
someone acknowledges, as on-call tools do (Alertmanager's grouping, PagerDuty's escalation).

An alert is one incident: site + rule + species (or camera, for equipment) within
`group_interval`; ten dead birds found in ten minutes are one alert that grows. States:

    triggered ──(group_wait)──► notified ──(ack)──► acknowledged ──► resolved
        │                          │ no ack after a step's delay: the next person in the chain
        └── silenced (a maintenance window of its site or camera)

Every step is a row (`alert_notifications`) written in the same transaction as the state
change, so a restart loses nothing; sending them (providers, caps, receipts) is a separate loop.
All decisions take `now`: tests drive a clock instead of sleeping.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from broker.payloads import Category, EventPayload, Severity
from central import roster
from central.alerts.policy import EscalationConfig, Policy, Step
from central.db.models import Alert, AlertEvent, AlertNotification, Silence, User

log = logging.getLogger(__name__)

ACK_CODE_DIGITS = 4


class AlertState(StrEnum):
    TRIGGERED = "triggered"
    NOTIFIED = "notified"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    SILENCED = "silenced"


OPEN_STATES = (AlertState.TRIGGERED, AlertState.NOTIFIED)


@dataclass(frozen=True, slots=True)
class Decision:
    """What `observe` did with an event."""

    alert_id: int
    new: bool
    state: AlertState


def group_key(event: EventPayload) -> str:
    """site/rule/incident: the species for wildlife, the camera for equipment."""
    if event.category is Category.CAMERA:
        what = f"camera:{event.camera}"
    elif event.species is not None:
        what = f"species:{event.species.scientific_name}"
    else:
        what = f"category:{event.category.value}"
    return f"{event.site}/{event.rule.value if event.rule else '-'}/{what}"


def _new_code(session: Session) -> str:
    """A short acknowledgement code not used by any open alert ("回复 1 3527 确认")."""
    for _ in range(50):
        code = f"{secrets.randbelow(10**ACK_CODE_DIGITS):0{ACK_CODE_DIGITS}d}"
        taken = session.scalar(
            sa.select(Alert.id).where(Alert.ack_code == code, Alert.state.in_(OPEN_STATES))
        )
        if taken is None:
            return code
    raise RuntimeError("no free acknowledgement code")  # 10,000 open alerts: not a station


def _silenced(session: Session, event: EventPayload, at: datetime) -> bool:
    return (
        session.scalar(
            sa.select(Silence.id).where(
                Silence.site == event.site,
                sa.or_(Silence.camera.is_(None), Silence.camera == event.camera),
                Silence.starts_at <= at,
                Silence.ends_at > at,
            )
        )
        is not None
    )


# Two ingest workers that see the same incident at the same moment must not both find no alert
# and both open one. On PostgreSQL the transactions that page take this advisory lock in turn
# (held until they commit; one lock, so no deadlock between workers). SQLite has one writer.
OBSERVE_LOCK = 0x5757_414C_4552_5431  # "WWALERT1"


def _one_observer_at_a_time(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(OBSERVE_LOCK)))


def observe(
    *, session: Session, event: EventPayload, config: EscalationConfig, now: datetime
) -> Decision | None:
    """Join the anomaly to its open alert or open a new one; None for what pages nobody (an
    observation, or a severity without a policy)."""
    if event.rule is None or event.severity not in config.policies:
        return None
    _one_observer_at_a_time(session)
    key = group_key(event)
    wait = timedelta(seconds=config.group_wait(event.severity))
    since = now - timedelta(seconds=config.group_interval_s)
    alert = session.scalar(
        sa.select(Alert)
        .where(
            Alert.group_key == key,
            Alert.state.in_([*OPEN_STATES, AlertState.ACKNOWLEDGED, AlertState.SILENCED]),
            Alert.last_event_at >= since,
        )
        .order_by(Alert.id.desc())
        .with_for_update()
    )
    new = alert is None
    if alert is None:
        silenced = _silenced(session, event, now)
        alert = Alert(
            site=event.site,
            rule=event.rule.value,
            group_key=key,
            severity=event.severity.value,
            state=(AlertState.SILENCED if silenced else AlertState.TRIGGERED).value,
            ack_code=_new_code(session),
            opened_at=now,
            last_event_at=now,
            event_count=0,
            step=0,
            round=0,
            next_action_at=None if silenced else now + wait,
            title_zh=event.message_zh[:200],
        )
        session.add(alert)
        session.flush()
    else:
        if Severity(event.severity).rank > Severity(alert.severity).rank:
            # the incident grew worse: its policy now, from the top of the chain, at once
            # (a warning held for the morning or already done must page now)
            alert.severity = event.severity.value
            if alert.state in OPEN_STATES:
                alert.step, alert.round = 0, 0
                alert.next_action_at = now + wait
        if alert.state == AlertState.SILENCED and not _silenced(session, event, now):
            # seen where no maintenance is going on: the incident is real after all
            alert.state = AlertState.TRIGGERED.value
            alert.next_action_at = now + timedelta(
                seconds=config.group_wait(Severity(alert.severity))
            )
    alert.last_event_at = now
    alert.event_count += event.count
    session.add(AlertEvent(alert_id=alert.id, event_id=str(event.event_id)))
    return Decision(alert.id, new, AlertState(alert.state))


def _daytime(at: datetime, tz: ZoneInfo, config: EscalationConfig) -> bool:
    t = at.astimezone(tz).time()
    return config.daytime_start <= t < config.daytime_end


def _next_daytime(at: datetime, tz: ZoneInfo, config: EscalationConfig) -> datetime:
    local = at.astimezone(tz)
    start = datetime.combine(local.date(), config.daytime_start, tzinfo=tz)
    if local >= start:
        start += timedelta(days=1)
    return start


def _notify(
    session: Session, alert: Alert, step: Step, now: datetime, tz: ZoneInfo
) -> list[AlertNotification]:
    people = [
        p
        for p in roster.chain(session=session, site=alert.site, at=now, tz=tz)
        if p.role is step.role and p.phone
    ]
    made = []
    for person in people:
        row = AlertNotification(
            alert_id=alert.id,
            step=alert.step,
            round=alert.round,
            user_name=person.name,
            phone=person.phone or "",
            template="alert",
            reference=str(uuid.uuid4()),
            state="pending",
            created_at=now,
        )
        session.add(row)
        made.append(row)
    if not people:
        log.warning("alert %d: nobody reachable holds %s at %s", alert.id, step.role, alert.site)
    return made


def tick(
    *, session: Session, config: EscalationConfig, now: datetime, tz: ZoneInfo
) -> list[AlertNotification]:
    """Take every alert whose next action is due: first notification after group_wait, the next
    step of the chain when nobody acknowledged, the chain again (repeat), or a warning held for
    the daytime. Returns the notifications to send (also stored, state pending)."""
    due = session.scalars(
        sa.select(Alert)
        .where(Alert.state.in_(OPEN_STATES), Alert.next_action_at <= now)
        .order_by(Alert.next_action_at)
        .with_for_update()
    ).all()
    made: list[AlertNotification] = []
    for alert in due:
        try:
            with session.begin_nested():  # one alert's trouble never stops the others
                made += _advance(session, alert, config, now, tz)
        except Exception:
            log.exception("alert %d could not advance; it is tried again next round", alert.id)
    return made


def next_due(session: Session, *, after: datetime) -> datetime | None:
    """When the earliest open alert's next step falls due after `after` (None: none)."""
    return session.scalar(
        sa.select(sa.func.min(Alert.next_action_at)).where(
            Alert.state.in_(OPEN_STATES), Alert.next_action_at > after
        )
    )


def _policy(config: EscalationConfig, severity: str) -> Policy:
    """The severity's policy, or the nearest stricter one configured (then the nearest)."""
    wanted = Severity(severity)
    if wanted in config.policies:
        return config.policies[wanted]
    ranked = sorted(
        config.policies, key=lambda s: (s.rank < wanted.rank, abs(s.rank - wanted.rank))
    )
    return config.policies[ranked[0]]


def _advance(
    session: Session, alert: Alert, config: EscalationConfig, now: datetime, tz: ZoneInfo
) -> list[AlertNotification]:
    policy = _policy(config, alert.severity)
    if policy.daytime_only and not _daytime(now, tz, config):
        alert.next_action_at = _next_daytime(now, tz, config)
        return []
    if alert.state == AlertState.TRIGGERED:
        alert.state = AlertState.NOTIFIED.value
        alert.notified_at = now
        alert.step, alert.round = 0, 0
    steps = policy.steps
    if alert.step >= len(steps):  # the policy changed under the alert: its first step
        alert.step = 0
    made: list[AlertNotification] = []
    # a step whose role nobody reachable holds is skipped at once, not waited out
    while True:
        made += _notify(session, alert, steps[alert.step], now, tz)
        alert.last_notified_at = now
        if alert.step + 1 < len(steps):
            wait = steps[alert.step + 1].after_s - steps[alert.step].after_s
            alert.step += 1
        elif alert.round < policy.repeat:
            wait = policy.repeat_after_s
            alert.step, alert.round = 0, alert.round + 1
        else:
            alert.next_action_at = None
            return made
        if made:
            break
    # Counted from when this step was due, not from when the round got to it, so that a late
    # round does not push every later step back (the delays stay the configured ones).
    scheduled = alert.next_action_at
    base = scheduled if scheduled is not None and scheduled <= now else now
    alert.next_action_at = max(base + timedelta(seconds=max(wait, 0.0)), now)
    return made


@dataclass(frozen=True, slots=True)
class Acknowledged:
    alert_id: int
    by: str
    notify: Sequence[str]  # phones already told about the alert, to hear who took it


def acknowledge(
    *,
    session: Session,
    by: str,
    now: datetime,
    code: str | None = None,
    alert_id: int | None = None,
    phone: str | None = None,
    own_phone: str | None = None,
) -> Acknowledged | None:
    """Someone took an alert: by its id (the console's button), or by the code of an SMS reply
    from `phone`, which must be a number the alert paged (a code alone is short and reused).
    None when no open alert matches. Escalation stops, messages not yet sent are cancelled, and
    those the alert reached (but the acknowledger: `phone`, or `own_phone` for one who took it
    on the console) are to learn who took it."""
    query = sa.select(Alert).where(Alert.state.in_(OPEN_STATES))
    if alert_id is not None:
        query = query.where(Alert.id == alert_id)
    elif code is not None and phone is not None:
        paged = sa.select(AlertNotification.alert_id).where(
            AlertNotification.phone.in_(_phone_forms(phone))
        )
        query = query.where(Alert.ack_code == code.strip(), Alert.id.in_(paged))
    else:
        raise ValueError("acknowledge by alert_id, or by code and phone")
    alert = session.scalar(query.order_by(Alert.id.desc()).with_for_update())
    if alert is None:
        return None
    alert.state = AlertState.ACKNOWLEDGED.value
    alert.acked_at = now
    alert.acked_by = by
    alert.next_action_at = None
    _cancel_pending(session, alert.id, now, why="acknowledged")
    reached = session.scalars(
        sa.select(AlertNotification.phone)
        .where(
            AlertNotification.alert_id == alert.id,
            AlertNotification.template == "alert",
            AlertNotification.state.in_(["submitted", "delivered", "uncertain"]),
        )
        .distinct()
    ).all()
    skip = {form for p in (phone, own_phone) if p for form in _phone_forms(p)}
    return Acknowledged(alert.id, by, [p for p in reached if p not in skip])


def _cancel_pending(session: Session, alert_id: int, now: datetime, *, why: str) -> None:
    """The alert's messages not sent yet will not be (a 'taken by' notice still goes)."""
    session.execute(
        sa.update(AlertNotification)
        .where(
            AlertNotification.alert_id == alert_id,
            AlertNotification.template == "alert",
            AlertNotification.state == "pending",
        )
        .values(state="cancelled", code=why, updated_at=now)
    )


def _phone_forms(phone: str) -> list[str]:
    """A mainland number as it may be written: 13800000000, +8613800000000, 8613800000000."""
    digits = phone.strip().lstrip("+")
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return [digits, "+86" + digits, "86" + digits]


def parse_reply(text: str) -> str | None:
    """The acknowledgement code in an SMS reply: "1 3527", "1,3527", "１ ３５２７" or "3527"."""
    import unicodedata

    plain = unicodedata.normalize("NFKC", text).replace(",", " ").replace("，", " ").split()
    if len(plain) == 2 and plain[0] == "1" and plain[1].isdigit():
        code = plain[1]
    elif len(plain) == 1 and plain[0].isdigit():
        code = plain[0]
    else:
        return None
    return code if len(code) == ACK_CODE_DIGITS else None


def resolve(*, session: Session, alert_id: int, now: datetime) -> bool:
    """Close an alert (over, or a false alarm): no more steps, messages not yet sent are
    cancelled. False when there is no such alert or it is closed already."""
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None or alert.state == AlertState.RESOLVED:
        return False
    alert.state = AlertState.RESOLVED.value
    alert.resolved_at = now
    alert.next_action_at = None
    _cancel_pending(session, alert.id, now, why="resolved")
    return True


# -- maintenance windows ---------------------------------------------------------------------

MAX_SILENCE = timedelta(days=14)


class SilenceError(ValueError):
    """A maintenance window that cannot be kept (the message is for the person)."""


def add_silence(
    *,
    session: Session,
    site: str,
    camera: str | None,
    starts_at: datetime,
    ends_at: datetime,
    by: str,
    reason: str,
    now: datetime,
) -> Silence:
    """A maintenance window for a site, or one camera of it: incidents that start in it page
    nobody (an alert already open goes on; resolve it if it is the maintenance itself)."""
    if ends_at <= starts_at:
        raise SilenceError("结束时间须晚于开始时间 the end must come after the start")
    if ends_at <= now:
        raise SilenceError("该时段已经过去 the window is over already")
    if ends_at - starts_at > MAX_SILENCE:
        raise SilenceError("维护时段最长14天 a window is at most 14 days")
    silence = Silence(
        site=site,
        camera=(camera or "").strip() or None,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=by,
        reason=reason.strip(),
    )
    session.add(silence)
    session.flush()
    return silence


def end_silence(*, session: Session, silence_id: int, now: datetime) -> Silence | None:
    """End a window now (or drop one not begun); None when there is none still running."""
    silence = session.get(Silence, silence_id)
    if silence is None or silence.ends_at <= now:
        return None
    if silence.starts_at > now:
        session.delete(silence)  # never began
    else:
        silence.ends_at = now
    return silence


def current_silences(session: Session, sites: Sequence[str], now: datetime) -> list[Silence]:
    """Windows running now or to come, of these sites, soonest first."""
    return list(
        session.scalars(
            sa.select(Silence)
            .where(Silence.site.in_(list(sites)), Silence.ends_at > now)
            .order_by(Silence.starts_at)
        )
    )


NOTICE = "report_notice"  # the template of a message to the station heads (no reply asked)


def notify_heads(
    *, session: Session, site: str, rule: str, key: str, title_zh: str, now: datetime
) -> Alert | None:
    """Tell the site's station heads (站长) something about the daily report: an alert of its
    own (shown on the 告警 page, closed there) and one message per head with a phone, sent by
    the pager's sender. Once per `key`: None when it was already raised."""
    group = f"{rule}:{key}"
    if session.scalar(sa.select(Alert.id).where(Alert.group_key == group)) is not None:
        return None
    alert = Alert(
        site=site,
        rule=rule,
        group_key=group,
        severity=Severity.WARNING.value,
        state=AlertState.NOTIFIED.value,  # no next action: the heads are told, nobody escalated
        ack_code=_new_code(session),
        opened_at=now,
        last_event_at=now,
        event_count=0,
        step=0,
        round=0,
        next_action_at=None,
        notified_at=now,
        last_notified_at=now,
        title_zh=title_zh[:200],
    )
    session.add(alert)
    session.flush()
    heads = [
        u
        for u in session.scalars(
            sa.select(User).where(User.role == "head", User.active.is_(True)).order_by(User.name)
        )
        if u.phone and (not u.sites or site in u.sites)
    ]
    for head in heads:
        session.add(
            AlertNotification(
                alert_id=alert.id,
                step=-3,
                round=0,
                user_name=head.name,
                phone=head.phone or "",
                template=NOTICE,
                reference=str(uuid.uuid4()),
                state="pending",
                created_at=now,
            )
        )
    if not heads:
        log.warning("%s at %s: no station head with a phone to tell (%s)", rule, site, title_zh)
    return alert
