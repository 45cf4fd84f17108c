"""SQLAlchemy ORM models of the central database (the schema itself is owned by Alembic)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Dead-letter payloads are kept for diagnosis, not replay: enough to see what went wrong.
DEAD_LETTER_MAX_BYTES = 64 * 1024
DEAD_LETTER_MAX_REASON = 1000
DEAD_LETTER_MAX_TOPIC = 255

REVIEW_UNREVIEWED = "unreviewed"
REVIEW_CONFIRMED = "confirmed"
REVIEW_DISMISSED = "dismissed"

# How a decision was made (event_reviews.action): POST .../review, or .../background (dismissed).
REVIEW_ACTION_REVIEW = "review"
REVIEW_ACTION_BACKGROUND = "background"

SMS_PENDING = "pending"
SMS_SENDING = "sending"
SMS_SENT = "sent"
SMS_FAILED = "failed"

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only
Json = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware datetimes stored as UTC; SQLite has no zone so it is restored on read."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations name constraints predictably."""

    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Event(Base):
    """One anomaly or observation as received from a node (idempotent on event_id)."""

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_captured_at", "captured_at"),
        sa.Index("ix_events_site_captured_at", "site", "captured_at"),
        sa.Index("ix_events_kind_captured_at", "kind", "captured_at"),
        sa.Index("ix_events_site_node_seq", "site", "node", "seq"),
        sa.Index("ix_events_received_at", "received_at"),  # a report's late additions
        # the console's review queue: unreviewed items of one kind and severity, newest first
        sa.Index(
            "ix_events_review_status_kind_severity_captured_at",
            "review_status",
            "kind",
            "severity",
            "captured_at",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    site: Mapped[str] = mapped_column(sa.String(32))
    node: Mapped[str] = mapped_column(sa.String(32))
    camera: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(16))
    category: Mapped[str] = mapped_column(sa.String(16))
    rule: Mapped[str | None] = mapped_column(sa.String(48))
    severity: Mapped[str] = mapped_column(sa.String(16))
    count: Mapped[int] = mapped_column(sa.Integer)
    confidence: Mapped[float] = mapped_column(sa.Float)
    species_scientific: Mapped[str | None] = mapped_column(sa.String(120))
    species_chinese: Mapped[str | None] = mapped_column(sa.String(60))
    species_confidence: Mapped[float | None] = mapped_column(sa.Float)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime())
    captured_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    message_zh: Mapped[str] = mapped_column(sa.Text, default="")
    message_en: Mapped[str] = mapped_column(sa.Text, default="")
    source: Mapped[str] = mapped_column(sa.String(255), default="")
    model: Mapped[str] = mapped_column(sa.String(64), default="")
    boxes: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    review_status: Mapped[str] = mapped_column(
        sa.String(16), default=REVIEW_UNREVIEWED, server_default=REVIEW_UNREVIEWED
    )
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reviewer: Mapped[str | None] = mapped_column(sa.String(64))
    review_note: Mapped[str | None] = mapped_column(sa.Text())
    # The species a reviewer named on confirming (catalogue scientific name; NULL: the node's
    # suggestion stands) and which box it is (NULL: the first); the station's gallery learns
    # from these.
    confirmed_species: Mapped[str | None] = mapped_column(sa.String(120))
    confirmed_box: Mapped[int | None] = mapped_column(sa.Integer)
    evidence: Mapped[list[EvidenceFile]] = relationship(
        lazy="selectin", order_by="EvidenceFile.name", viewonly=True
    )


class EventReview(Base):
    """One staff decision on an event, kept for good; the event row carries the latest one."""

    __tablename__ = "event_reviews"
    __table_args__ = (sa.Index("ix_event_reviews_event_id_reviewed_at", "event_id", "reviewed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("events.event_id"))
    decision: Mapped[str] = mapped_column(sa.String(16))
    action: Mapped[str] = mapped_column(sa.String(16))
    reviewer: Mapped[str] = mapped_column(sa.String(64))
    note: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The event's review state just before this decision (the audit's "before"; `decision` is
    # the "after"); NULL on decisions recorded before the console existed.
    before: Mapped[str | None] = mapped_column(sa.String(16))
    reason: Mapped[str | None] = mapped_column(sa.String(32), doc="dismissal reason code")
    species: Mapped[str | None] = mapped_column(sa.String(120), doc="species named on confirming")
    box_index: Mapped[int | None] = mapped_column(sa.Integer, doc="the box that species is")


class DeadLetter(Base):
    """A message that broke the contract, kept with the reason instead of being dropped."""

    __tablename__ = "dead_letters"
    __table_args__ = (sa.Index("ix_dead_letters_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    topic: Mapped[str] = mapped_column(sa.String(DEAD_LETTER_MAX_TOPIC))
    payload: Mapped[str] = mapped_column(sa.Text)
    payload_size: Mapped[int] = mapped_column(sa.Integer)
    reason: Mapped[str] = mapped_column(sa.Text)


class Node(Base):
    """Last known health and presence of one edge node."""

    __tablename__ = "nodes"

    site: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    node: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    state: Mapped[str | None] = mapped_column(sa.String(16))
    state_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_heartbeat: Mapped[dict[str, Any] | None] = mapped_column(Json)
    last_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # Every event numbered 1..contiguous_seq is stored; max_seq is the highest stored at all.
    contiguous_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    max_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # The camera_health event raised for the current outage (NULL while the node is up).
    offline_event_id: Mapped[str | None] = mapped_column(sa.String(36))


class SeqGap(Base):
    """A range of a node's sequence numbers not stored yet (from_seq..to_seq, inclusive)."""

    __tablename__ = "seq_gaps"
    __table_args__ = (sa.Index("ix_seq_gaps_site_node_from_seq", "site", "node", "from_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(sa.String(32))
    node: Mapped[str] = mapped_column(sa.String(32))
    from_seq: Mapped[int] = mapped_column(sa.BigInteger)
    to_seq: Mapped[int] = mapped_column(sa.BigInteger)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    requests: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")


class SmsMessage(Base):
    """One SMS to one duty phone about one event; unique per (event, phone) so it is sent once."""

    __tablename__ = "sms_messages"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "phone", name="uq_sms_messages_event_id_phone"),
        sa.Index("ix_sms_messages_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("events.event_id"))
    phone: Mapped[str] = mapped_column(sa.String(32))
    text: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(sa.String(16), default=SMS_PENDING)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(sa.Text)
    # A failed SMS is tried again from this time on (backoff); NULL: at once.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ClusterMember(Base):
    """One suspected death counted in a mortality cluster central raised (once, ever)."""

    __tablename__ = "cluster_members"
    __table_args__ = (
        sa.UniqueConstraint("death_event_id", name="uq_cluster_members_death_event_id"),
        sa.Index("ix_cluster_members_cluster_event_id", "cluster_event_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cluster_event_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("events.event_id"))
    death_event_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("events.event_id"))


class EvidenceFile(Base):
    """One evidence image a node uploaded for an event, stored after its sha256 checked out."""

    __tablename__ = "evidence"
    __table_args__ = (sa.UniqueConstraint("event_id", "name", name="uq_evidence_event_id_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("events.event_id"))
    name: Mapped[str] = mapped_column(sa.String(128))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    path: Mapped[str] = mapped_column(sa.String(512), doc="relative to the evidence directory")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class User(Base):
    """A person who logs in to the staff console (监测员, 站长, 省局, admin)."""

    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("name", name="uq_users_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(64), doc="login name, recorded on decisions")
    display_name: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    role: Mapped[str] = mapped_column(sa.String(16))
    sites: Mapped[list[str]] = mapped_column(Json, default=list, doc="empty: every site")
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A logged-in browser: the cookie holds a random token, the table only its sha256."""

    __tablename__ = "web_sessions"
    __table_args__ = (sa.Index("ix_web_sessions_user_id", "user_id"),)

    token_sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventOpen(Base):
    """Someone opened an event in the console (an item counts as reviewed only once opened)."""

    __tablename__ = "event_opens"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "user_name", name="uq_event_opens_event_id_user_name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("events.event_id"))
    user_name: Mapped[str] = mapped_column(sa.String(64))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReportSignoff(Base):
    """A station head signed a site's daily report (审核签发)."""

    __tablename__ = "report_signoffs"
    __table_args__ = (
        sa.UniqueConstraint("report_date", "site", name="uq_report_signoffs_report_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_date: Mapped[date] = mapped_column(sa.Date)
    site: Mapped[str] = mapped_column(sa.String(32))
    signer: Mapped[str] = mapped_column(sa.String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # the as-of time of the report the head read and signed: what the signature covers
    report_as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    reporter: Mapped[str] = mapped_column(
        sa.String(64), default="", server_default="", doc="填报人 (the signer when left empty)"
    )
    reporter_phone: Mapped[str] = mapped_column(sa.String(32), default="", server_default="")


class NodeOutage(Base):
    """One time a node was offline (ended_at NULL while it still is): the status timeline."""

    __tablename__ = "node_outages"
    __table_args__ = (
        sa.Index("ix_node_outages_site_node_started_at", "site", "node", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(sa.String(32))
    node: Mapped[str] = mapped_column(sa.String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Case(Base):
    """异常情况 a case for the report: opened from a confirmed event or by hand, then filled in
    (central/cases.py validates the record)."""

    __tablename__ = "cases"
    __table_args__ = (
        sa.UniqueConstraint("event_id", name="uq_cases_event_id"),
        sa.Index("ix_cases_found_at", "found_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(sa.String(32))
    event_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("events.event_id"), doc="NULL: opened by hand"
    )
    opened_by: Mapped[str] = mapped_column(sa.String(64))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(sa.String(16), default="open", server_default="open")
    found_at: Mapped[datetime] = mapped_column(UTCDateTime(), doc="which report it belongs to")
    location: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    species_scientific: Mapped[str | None] = mapped_column(sa.String(120))
    species_chinese: Mapped[str | None] = mapped_column(sa.String(60))
    sick_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    dead_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    flock_count: Mapped[int | None] = mapped_column(sa.Integer)
    signs: Mapped[list[str]] = mapped_column(Json, default=list)
    signs_note: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    origin: Mapped[str] = mapped_column(sa.String(16), default="", server_default="")
    human_contact: Mapped[bool | None] = mapped_column(sa.Boolean)
    human_contact_note: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    poultry_farms_3km: Mapped[int | None] = mapped_column(sa.Integer)
    poultry_check: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    samples: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    no_sample_reason: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    measures: Mapped[list[str]] = mapped_column(Json, default=list)
    measures_note: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    judgement: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    photos: Mapped[list[dict[str, Any]]] = mapped_column(
        Json, default=list, doc="[{name, path, sha256, size}] taken on site (evidence dir)"
    )
    updated_by: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Patrol(Base):
    """巡护记录 one patrol of a site: who, where, when, the weather, what was seen, photos."""

    __tablename__ = "patrols"
    __table_args__ = (sa.Index("ix_patrols_site_started_at", "site", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(sa.String(32))
    observers: Mapped[str] = mapped_column(sa.String(200))
    route: Mapped[str] = mapped_column(sa.String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    weather: Mapped[str] = mapped_column(sa.String(32), default="", server_default="")
    sightings: Mapped[list[dict[str, Any]]] = mapped_column(
        Json, default=list, doc="[{species_scientific, species_chinese, count}]"
    )
    note: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    photos: Mapped[list[dict[str, Any]]] = mapped_column(
        Json, default=list, doc="[{name, path, sha256, size}] under the evidence directory"
    )
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DutyShift(Base):
    """A recurring shift of the duty roster: a person in a role on a kind of day and hours."""

    __tablename__ = "duty_shifts"
    __table_args__ = (sa.Index("ix_duty_shifts_site", "site"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(sa.String(32))
    role: Mapped[str] = mapped_column(sa.String(16), doc="duty | backup | head")
    user_name: Mapped[str] = mapped_column(sa.String(64))
    day_kind: Mapped[str] = mapped_column(sa.String(16), doc="workday | weekend | holiday | any")
    start_time: Mapped[time] = mapped_column(sa.Time())
    end_time: Mapped[time] = mapped_column(sa.Time(), doc="before start_time: past midnight")


class DutyOverride(Base):
    """A one-off change of the roster: `user_name` holds `role` from starts_at to ends_at."""

    __tablename__ = "duty_overrides"
    __table_args__ = (sa.Index("ix_duty_overrides_site_starts_at", "site", "starts_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(sa.String(32))
    role: Mapped[str] = mapped_column(sa.String(16))
    user_name: Mapped[str] = mapped_column(sa.String(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(sa.Text, default="", server_default="")


class RosterDay(Base):
    """An official holiday or make-up workday (site NULL: every site)."""

    __tablename__ = "roster_days"
    __table_args__ = (sa.Index("ix_roster_days_day", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(sa.Date)
    kind: Mapped[str] = mapped_column(sa.String(16), doc="holiday | workday")
    site: Mapped[str | None] = mapped_column(sa.String(32))


class Alert(Base):
    """One incident being escalated to the duty chain (central/alerting.py)."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.Index("ix_alerts_group_key_last_event_at", "group_key", "last_event_at"),
        sa.Index("ix_alerts_state_next_action_at", "state", "next_action_at"),
        sa.Index("ix_alerts_ack_code", "ack_code"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(sa.String(32))
    rule: Mapped[str] = mapped_column(sa.String(48))
    group_key: Mapped[str] = mapped_column(sa.String(255))
    severity: Mapped[str] = mapped_column(sa.String(16))
    state: Mapped[str] = mapped_column(sa.String(16))
    ack_code: Mapped[str] = mapped_column(sa.String(8))
    title_zh: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_event_at: Mapped[datetime] = mapped_column(UTCDateTime())
    event_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    step: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    round: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    next_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acked_by: Mapped[str | None] = mapped_column(sa.String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AlertEvent(Base):
    """An event that is part of an alert."""

    __tablename__ = "alert_events"
    __table_args__ = (
        sa.UniqueConstraint("event_id", name="uq_alert_events_event_id"),
        sa.Index("ix_alert_events_alert_id", "alert_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("alerts.id"))
    event_id: Mapped[str] = mapped_column(sa.String(36))


class AlertNotification(Base):
    """One message of an alert's escalation to one person, and what became of it."""

    __tablename__ = "alert_notifications"
    __table_args__ = (
        sa.UniqueConstraint("reference", name="uq_alert_notifications_reference"),
        sa.Index("ix_alert_notifications_alert_id", "alert_id"),
        sa.Index("ix_alert_notifications_state", "state"),
        sa.Index("ix_alert_notifications_phone_sent_at", "phone", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("alerts.id"))
    step: Mapped[int] = mapped_column(sa.Integer)
    round: Mapped[int] = mapped_column(sa.Integer)
    user_name: Mapped[str] = mapped_column(sa.String(64))
    phone: Mapped[str] = mapped_column(sa.String(32))
    template: Mapped[str] = mapped_column(sa.String(32))
    reference: Mapped[str] = mapped_column(sa.String(36), doc="our id, carried by the provider")
    state: Mapped[str] = mapped_column(
        sa.String(16), doc="pending | submitted | delivered | failed | capped"
    )
    provider: Mapped[str | None] = mapped_column(sa.String(16))
    message_id: Mapped[str | None] = mapped_column(sa.String(64))
    code: Mapped[str | None] = mapped_column(sa.String(64), doc="provider status or error code")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), doc="handed to a provider (what per-number caps count)"
    )


class Silence(Base):
    """A maintenance window: no alert pages anyone for this site (or one camera of it)."""

    __tablename__ = "silences"
    __table_args__ = (sa.Index("ix_silences_site_ends_at", "site", "ends_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(sa.String(32))
    camera: Mapped[str | None] = mapped_column(sa.String(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.Text, default="", server_default="")


class ExpressReport(Base):
    """快报: the 2-hour report of a confirmed mortality cluster or protected animal's death."""

    __tablename__ = "express_reports"
    __table_args__ = (
        sa.UniqueConstraint("event_id", name="uq_express_reports_event_id"),
        sa.Index("ix_express_reports_sent_at_deadline", "sent_at", "deadline"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), sa.ForeignKey("events.event_id"))
    site: Mapped[str] = mapped_column(sa.String(32))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), doc="the confirmation")
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    reminded_60_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminded_90_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    path: Mapped[str | None] = mapped_column(sa.String(512))
    sha256: Mapped[str | None] = mapped_column(sa.String(64))


class ReportDelivery(Base):
    """One site's daily report on its way to the bureau by one channel (mail, HTTP upload).

    Prepared once at the cut-off (the files and their sha256 are fixed then), tried until
    delivered; the idempotency key is the same on every try, so the bureau files one report."""

    __tablename__ = "report_deliveries"
    __table_args__ = (
        sa.UniqueConstraint(
            "idempotency_key", "channel", name="uq_report_deliveries_idempotency_key"
        ),
        sa.Index("ix_report_deliveries_report_date_site", "report_date", "site"),
        sa.Index("ix_report_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(
        sa.String(16), default="daily", server_default="daily", doc="daily | express (快报)"
    )
    report_date: Mapped[date] = mapped_column(sa.Date)
    site: Mapped[str] = mapped_column(sa.String(32))
    channel: Mapped[str] = mapped_column(sa.String(16), doc="smtp | http")
    idempotency_key: Mapped[str] = mapped_column(sa.String(128))
    signed: Mapped[bool] = mapped_column(sa.Boolean, doc="false: sent marked 未经审核")
    subject: Mapped[str] = mapped_column(sa.String(300))
    body: Mapped[str] = mapped_column(sa.Text)
    files: Mapped[list[dict[str, Any]]] = mapped_column(
        Json, default=list, doc="[{name, path, sha256, size}] as prepared"
    )
    state: Mapped[str] = mapped_column(sa.String(16), doc="pending | delivered")
    prepared_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    receipt: Mapped[str | None] = mapped_column(
        sa.String(255), doc="the mail's Message-ID or the bureau's receipt id"
    )
    last_error: Mapped[str | None] = mapped_column(sa.Text)


class DeliveryAttempt(Base):
    """One try to deliver a report, and what came of it (shown on the report page)."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (sa.Index("ix_delivery_attempts_delivery_id", "delivery_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("report_deliveries.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int] = mapped_column(sa.Integer)
    ok: Mapped[bool] = mapped_column(sa.Boolean)
    detail: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
