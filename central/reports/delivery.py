"""Each site's daily report on its way to the bureau: prepared at the cut-off, delivered with
receipts, and the station head told when a person is needed.

The day's rhythm (central.yaml report.cutoff and report.delivery; defaults in brackets):

- draft_at (14:30): heads of sites whose report is not signed yet are told the draft is ready
  on the console's 日报 page.
- cut-off (15:00): the closed window's report is produced (the station's JSON, XLSX and PDF,
  as `central report` writes them) and cut per site; each site's files are frozen (sha256) and
  one delivery per channel is queued. An unsigned report goes anyway, marked 未经审核 in every
  file and the mail subject, and its heads are told (a zero report is never held back).
- tries: at once, then after retry_initial_s (30 s) doubling up to retry_max_s (300 s), until
  delivered; every try and its outcome is a row (delivery_attempts) shown on the 报送 page.
- cut-off + missing_after_minutes (15:10): a site not delivered on every channel is 未上报 on
  the provincial view and its heads are told.
- cut-off + overdue_after_minutes (15:30): still not delivered: the heads are told again
  (送达超时), to send it by hand; the tries go on.

The idempotency key (station code or site, and day) is the same on every try and every channel.
Every step takes `now`: tests drive the clock.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time as systime
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from central import alerting, messages
from central.config import CentralConfig
from central.crud import upsert_insert
from central.db.models import DeliveryAttempt, ExpressReport, ReportDelivery, ReportSignoff
from central.reports import record
from central.reports.channels import CHANNELS, DeliveryError, Package, PackedFile
from central.reports.daily import for_sites, produce, report_day_for, report_window
from central.reports.model import DailyReport
from central.reports.settings import DeliveryConfig

log = logging.getLogger(__name__)

DAILY = "daily"
EXPRESS = "express"
PENDING = "pending"
DELIVERED = "delivered"
OUTBOX = "outbox"  # report_dir/outbox/<day>/<site>/: the files as sent
LEASE_MARGIN = timedelta(seconds=60)
# Express reports written longer ago than this are not sent when delivery is switched on: an
# express report is about the last two hours, not history.
EXPRESS_RECENT = timedelta(hours=24)


def draft_time(config: CentralConfig, day: date) -> datetime:
    """When the draft of `day`'s report is announced: report.delivery.draft_at before its
    cut-off (the cut-off itself without delivery)."""
    _start, end = report_window(config=config, day=day)
    if config.report.delivery is None:
        return end
    draft = datetime.combine(end.date(), config.report.delivery.draft_time, tzinfo=end.tzinfo)
    return draft - timedelta(days=1) if draft >= end else draft


def idempotency_key(config: CentralConfig, site: str, day: date) -> str:
    cfg = config.sites.get(site)
    code = (cfg.station_code if cfg else "") or config.report.station_code or "ww"
    return f"wildwatch-{code}-{site}-{day.isoformat()}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _station_report(
    session: Session, config: CentralConfig, day: date, now: datetime
) -> DailyReport:
    """The station's report of `day` as on file, produced now when there is no final one."""
    out = config.report_dir
    on_file = record.records(out)
    existing = on_file.get(day)
    if existing is None or not existing.final:
        produce(session=session, config=config, day=day, out_dir=out, reports=on_file, now=now)
    json_path, _ = record.paths(out, day)
    return DailyReport.model_validate_json(json_path.read_text(encoding="utf-8"))


def _site_files(report: DailyReport, config: CentralConfig, site: str) -> list[PackedFile]:
    """The site's cut of the report written as JSON, XLSX and PDF into its outbox folder."""
    day = report.day
    folder = config.report_dir / OUTBOX / day.isoformat() / site
    paths = record.write_files(
        report, folder, evidence_dir=config.evidence_dir, font=config.report.pdf_font
    )
    stem = f"daily_report_{day.isoformat()}_{site}"
    return [
        PackedFile(name=f"{stem}{p.suffix}", path=p, sha256=_sha256(p), size=p.stat().st_size)
        for p in paths
    ]


def _letter(
    report: DailyReport, config: CentralConfig, files: list[PackedFile], key: str
) -> tuple[str, str]:
    """(subject, body) of the report's mail, Chinese first."""
    section = report.sites[0]
    tz = ZoneInfo(config.timezone)
    signoff = section.signoff
    subject = messages.DELIVERY_SUBJECT.format(
        unsigned="" if signoff else messages.DELIVERY_UNSIGNED_TAG,
        name=section.name_zh,
        day=report.day.isoformat(),
        summary=section.summary_zh,
    )
    lines = [
        messages.DELIVERY_BODY_HEAD.format(name=section.name_zh, day=report.day.isoformat()),
        f"{messages.INFO_STATION_CODE}：{section.station_code or report.station_code}",
        f"{messages.INFO_WINDOW}：{messages.long_time(report.window_start.astimezone(tz))} 至 "
        f"{messages.long_time(report.window_end.astimezone(tz))}",
        f"{messages.INFO_ABNORMAL}：{section.abnormal_zh}",
        f"{messages.INFO_SUMMARY}：{section.summary_zh}",
    ]
    if signoff is not None:
        lines += [
            f"{messages.PDF_SIGN_REPORTER}：{signoff.reporter}",
            f"{messages.PDF_SIGN_PHONE}：{signoff.reporter_phone}",
            f"{messages.PDF_SIGN_AUDITOR}：{signoff.auditor}",
            f"{messages.PDF_SIGN_TIME}：{messages.long_time(signoff.signed_at.astimezone(tz))}",
        ]
    else:
        lines.append(messages.DELIVERY_BODY_UNSIGNED)
    lines.append("")
    lines.append(messages.DELIVERY_BODY_FILES)
    lines += [f"  {f.name}  sha256 {f.sha256}  {f.size} B" for f in files]
    lines.append(f"{messages.DELIVERY_BODY_KEY}：{key}")
    return subject, "\n".join(lines) + "\n"


class Courier:
    """Runs the day's rhythm for every configured site; `tick(now)` does what is due."""

    def __init__(
        self,
        *,
        config: CentralConfig,
        session_factory: sessionmaker[Session],
        interval_s: float = 5.0,
    ) -> None:
        if config.report.delivery is None:
            raise ValueError("report.delivery is not configured")
        config.report.delivery.check_secrets()  # a missing password stops start-up, not 15:00
        self.config = config
        self.settings: DeliveryConfig = config.report.delivery
        self.session_factory = session_factory
        self.interval_s = interval_s
        self.tz = ZoneInfo(config.timezone)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the clock --------------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """Announce the draft, prepare the closed day, send what is due, raise what is late."""
        closed = report_day_for(now, self.config) - timedelta(days=1)
        days: list[date] = []

        def prepare() -> int:
            days.extend(self.due_days(now))
            return sum(self.prepare(day, now) for day in days)

        steps: list[Callable[[], int]] = [
            lambda: self.announce_draft(now),
            prepare,
            lambda: self.queue_express(now),
            lambda: self.send_due(now),
            lambda: self.check_late(closed, now) if closed in days else 0,
        ]
        for step in steps:
            try:
                step()
            except Exception:  # one step's trouble never stops the others
                log.exception("report delivery step failed; tried again next round")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="report-courier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick(datetime.now(UTC))
            except Exception:  # the courier outlives any one round (a database restart)
                log.exception("report courier round failed; the next one tries again")
            self._stop.wait(self.interval_s)

    # -- steps ------------------------------------------------------------------------------

    def announce_draft(self, now: datetime) -> int:
        """From draft_at on, tell the heads of unsigned sites that the draft is ready."""
        day = report_day_for(now, self.config)
        if now < draft_time(self.config, day):
            return 0
        told = 0
        with self.session_factory.begin() as session:
            signed = self._signed_sites(session, day)
            for site in self.config.sites:
                if site in signed:
                    continue
                told += (
                    alerting.notify_heads(
                        session=session,
                        site=site,
                        rule="report_draft",
                        key=f"{site}:{day}",
                        title_zh=messages.DELIVERY_DRAFT.format(
                            day=day.isoformat(), cutoff=self.config.report.cutoff
                        ),
                        now=now,
                    )
                    is not None
                )
        return told

    def due_days(self, now: datetime) -> list[date]:
        """Closed days to prepare: from the last day prepared (a site may still lack its rows)
        to the last closed one, so days missed while central was down are sent late rather
        than never (at most report.max_catch_up_days). The first time delivery runs, only the
        last closed day, and only until its overdue time: switching delivery on does not send
        an old report."""
        closed = report_day_for(now, self.config) - timedelta(days=1)
        with self.session_factory() as session:
            last = session.scalar(
                sa.select(sa.func.max(ReportDelivery.report_date)).where(
                    ReportDelivery.kind == DAILY
                )
            )
        if last is None:
            _start, end = report_window(config=self.config, day=closed)
            overdue = end + timedelta(minutes=self.settings.overdue_after_minutes)
            return [closed] if now < overdue else []
        days = [last + timedelta(days=n) for n in range((closed - last).days + 1)]
        return days[-self.config.report.max_catch_up_days :]

    def prepare(self, day: date, now: datetime) -> int:
        """Freeze each site's report of the closed `day` and queue it per channel (once)."""
        channels = self.settings.channels()
        with self.session_factory() as session:
            done = set(
                session.scalars(
                    sa.select(ReportDelivery.site).where(
                        ReportDelivery.report_date == day, ReportDelivery.kind == DAILY
                    )
                )
            )
        wanted = [site for site in self.config.sites if site not in done]
        if not wanted:
            return 0
        with self.session_factory() as session:
            report = _station_report(session, self.config, day, now)
        queued = 0
        for site in wanted:
            mine = for_sites(report, site.__eq__)
            if not mine.sites:
                continue
            try:
                files = _site_files(mine, self.config, site)
            except Exception:  # one site's files must not hold back the others
                log.exception("report %s of %s could not be written; tried next round", day, site)
                continue
            key = idempotency_key(self.config, site, day)
            subject, body = _letter(mine, self.config, files, key)
            signed = mine.sites[0].signoff is not None
            with self.session_factory.begin() as session:
                queued += self._queue(
                    session,
                    kind=DAILY,
                    day=day,
                    site=site,
                    key=key,
                    signed=signed,
                    letter=(subject, body),
                    files=files,
                    now=now,
                )
                if not signed:
                    alerting.notify_heads(
                        session=session,
                        site=site,
                        rule="report_unsigned",
                        key=f"{site}:{day}",
                        title_zh=messages.DELIVERY_UNSIGNED.format(day=day.isoformat()),
                        now=now,
                    )
            log.info("report %s of %s queued for %s (signed: %s)", day, site, channels, signed)
        return queued

    def _queue(
        self,
        session: Session,
        *,
        kind: str,
        day: date,
        site: str,
        key: str,
        signed: bool,
        letter: tuple[str, str],
        files: list[PackedFile],
        now: datetime,
    ) -> int:
        """One delivery per configured channel (once per key and channel); how many are new."""
        queued = 0
        for channel in self.settings.channels():
            result = session.execute(
                upsert_insert(session, ReportDelivery)
                .values(
                    kind=kind,
                    report_date=day,
                    site=site,
                    channel=channel,
                    idempotency_key=key,
                    signed=signed,
                    subject=letter[0],
                    body=letter[1],
                    files=[
                        {
                            "name": f.name,
                            "path": str(f.path.relative_to(self.config.report_dir)),
                            "sha256": f.sha256,
                            "size": f.size,
                        }
                        for f in files
                    ],
                    state=PENDING,
                    prepared_at=now,
                    attempts=0,
                    next_attempt_at=now,
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key", "channel"])
            )
            queued += int(bool(getattr(result, "rowcount", 0)))
        return queued

    def queue_express(self, now: datetime) -> int:
        """Express reports (快报) written by central/express.py, each queued once per channel
        with its JSON and PDF, so they reach the bureau inside their 2 hours."""
        with self.session_factory() as session:
            written = session.scalars(
                sa.select(ExpressReport).where(
                    ExpressReport.sent_at >= now - EXPRESS_RECENT,
                    ExpressReport.path.is_not(None),
                )
            ).all()
            queued_keys = set(
                session.scalars(
                    sa.select(ReportDelivery.idempotency_key).where(ReportDelivery.kind == EXPRESS)
                )
            )
        queued = 0
        for report in written:
            key = f"wildwatch-express-{report.event_id}"
            if key in queued_keys or report.path is None:
                continue
            try:
                queued += self._queue_one_express(report, key, now)
            except Exception:  # one express report's trouble never holds back another
                log.exception("express report %d could not be queued", report.id)
        return queued

    def _queue_one_express(self, report: ExpressReport, key: str, now: datetime) -> int:
        """The express report's JSON and PDF, queued per channel; how many deliveries are new."""
        if report.path is None:
            return 0
        json_path = Path(report.path)
        paths = [p for p in (json_path.with_suffix(".pdf"), json_path) if p.is_file()]
        if json_path not in paths:
            log.error("express report %d: %s is gone, not sent", report.id, json_path)
            return 0
        files = [
            PackedFile(name=p.name, path=p, sha256=_sha256(p), size=p.stat().st_size) for p in paths
        ]
        site = self.config.sites.get(report.site)
        name = site.name_zh if site else report.site
        opened = report.opened_at.astimezone(self.tz)
        subject = messages.EXPRESS_SUBJECT.format(name=name, at=f"{opened:%Y-%m-%d %H:%M}")
        body = "\n".join(
            [
                messages.EXPRESS_BODY.format(
                    name=name,
                    at=f"{opened:%Y-%m-%d %H:%M}",
                    deadline=f"{report.deadline.astimezone(self.tz):%H:%M}",
                ),
                "",
                messages.DELIVERY_BODY_FILES,
                *(f"  {f.name}  sha256 {f.sha256}  {f.size} B" for f in files),
                f"{messages.DELIVERY_BODY_KEY}：{key}",
            ]
        )
        with self.session_factory.begin() as session:
            queued = self._queue(
                session,
                kind=EXPRESS,
                day=opened.date(),
                site=report.site,
                key=key,
                signed=True,
                letter=(subject, body + "\n"),
                files=files,
                now=now,
            )
        log.warning("express report %d queued for %s", report.id, self.settings.channels())
        return queued

    def send_due(self, now: datetime) -> int:
        """Try every delivery that is due; returns how many were delivered."""
        with self.session_factory() as session:
            ids = session.scalars(
                sa.select(ReportDelivery.id)
                .where(ReportDelivery.state == PENDING, ReportDelivery.next_attempt_at <= now)
                .order_by(ReportDelivery.id)
            ).all()
        # Each try is stamped with the round's time plus what the round has taken so far: one
        # slow server earlier in the round must not make later tries (and their receipts) look
        # earlier than they were.
        began = systime.monotonic()
        delivered = 0
        for row_id in ids:
            at = now + timedelta(seconds=systime.monotonic() - began)
            delivered += self._attempt(row_id, now, at)
        return delivered

    def _package(self, row: ReportDelivery) -> Package:
        cfg = self.config.sites.get(row.site)
        return Package(
            site=row.site,
            station_code=(cfg.station_code if cfg else "") or self.config.report.station_code,
            day=row.report_date,
            key=row.idempotency_key,
            signed=row.signed,
            subject=row.subject,
            body=row.body,
            files=tuple(
                PackedFile(
                    name=f["name"],
                    path=self.config.report_dir / f["path"],
                    sha256=f["sha256"],
                    size=int(f["size"]),
                )
                for f in row.files
            ),
            prepared_at=row.prepared_at,
        )

    def _attempt(self, row_id: int, now: datetime, at: datetime | None = None) -> bool:
        """One try of one delivery in the round of `now` (what is due, the lease and the next
        try count from it); the try itself is recorded as starting `at`."""
        at = at or now
        target = None
        with self.session_factory.begin() as session:
            row = session.get(ReportDelivery, row_id, with_for_update=True)
            if row is None or row.state != PENDING or (row.next_attempt_at or now) > now:
                return False  # another round took it
            target = getattr(self.settings, row.channel, None)
            timeout = timedelta(seconds=getattr(target, "timeout_s", 30.0))
            row.next_attempt_at = now + timeout + LEASE_MARGIN  # held while this try runs
            package = self._package(row)
            channel = row.channel
        started = systime.monotonic()
        receipt: str | None = None
        try:
            if target is None:
                raise DeliveryError(f"channel {channel} is no longer configured")
            receipt = CHANNELS[channel](package, target)
            detail = receipt
        except DeliveryError as exc:
            detail = str(exc)
        except Exception as exc:  # a bug in a channel must not stop the courier
            log.exception("report delivery %d: unexpected failure", row_id)
            detail = f"{type(exc).__name__}: {exc}"
        elapsed = systime.monotonic() - started
        elapsed_ms = int(elapsed * 1000)
        done = at + timedelta(seconds=elapsed)
        with self.session_factory.begin() as session:
            row = session.get(ReportDelivery, row_id)
            assert row is not None
            row.attempts += 1
            session.add(
                DeliveryAttempt(
                    delivery_id=row_id,
                    started_at=at,
                    duration_ms=elapsed_ms,
                    ok=receipt is not None,
                    detail=detail[:2000],
                )
            )
            if receipt is not None:
                row.state, row.receipt, row.delivered_at = DELIVERED, receipt, done
                row.next_attempt_at, row.last_error = None, None
                log.info(
                    "report %s of %s delivered by %s: %s",
                    row.report_date,
                    row.site,
                    channel,
                    receipt,
                )
            else:
                pause = min(
                    self.settings.retry_initial_s * 2 ** (row.attempts - 1),
                    self.settings.retry_max_s,
                )
                row.next_attempt_at = now + timedelta(seconds=pause)  # from the try's start
                row.last_error = detail[:2000]
                log.warning(
                    "report %s of %s not delivered by %s (try %d, next in %.0f s): %s",
                    row.report_date,
                    row.site,
                    channel,
                    row.attempts,
                    pause,
                    detail,
                )
        return receipt is not None

    def check_late(self, day: date, now: datetime) -> int:
        """Sites of the closed `day` not delivered on every channel: 未上报 after
        missing_after_minutes, 送达超时 after overdue_after_minutes; their heads told once each."""
        _start, end = report_window(config=self.config, day=day)
        steps = [
            ("report_missing", self.settings.missing_after_minutes, messages.DELIVERY_MISSING),
            ("report_undelivered", self.settings.overdue_after_minutes, messages.DELIVERY_OVERDUE),
        ]
        due = [
            (rule, text) for rule, minutes, text in steps if now >= end + timedelta(minutes=minutes)
        ]
        if not due:
            return 0
        told = 0
        with self.session_factory.begin() as session:
            late = undelivered_sites(session, self.config, day)
            for site in late:
                for rule, text in due:
                    told += (
                        alerting.notify_heads(
                            session=session,
                            site=site,
                            rule=rule,
                            key=f"{site}:{day}",
                            title_zh=text.format(day=day.isoformat()),
                            now=now,
                        )
                        is not None
                    )
        return told

    @staticmethod
    def _signed_sites(session: Session, day: date) -> set[str]:
        return set(
            session.scalars(sa.select(ReportSignoff.site).where(ReportSignoff.report_date == day))
        )


def undelivered_sites(session: Session, config: CentralConfig, day: date) -> list[str]:
    """Configured sites whose report of `day` is not delivered on every configured channel."""
    channels = set(config.report.delivery.channels()) if config.report.delivery else set()
    delivered: dict[str, set[str]] = {}
    for site, channel in session.execute(
        sa.select(ReportDelivery.site, ReportDelivery.channel).where(
            ReportDelivery.report_date == day,
            ReportDelivery.kind == DAILY,
            ReportDelivery.state == DELIVERED,
        )
    ):
        delivered.setdefault(site, set()).add(channel)
    return [site for site in config.sites if not channels <= delivered.get(site, set())]
