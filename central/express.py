"""The express report (快报) and its 2-hour clock.

A confirmed mortality cluster, or a confirmed suspected death of a nationally protected animal
(Class I or II in the station's catalogue), must reach the veterinary side within 2 hours of
confirmation (DOMAIN.md). Confirming such an event opens an express report with that deadline;
the duty chain is reminded at 60 and 90 minutes (through the event's alert, when the pager runs),
and 15 minutes before the deadline whatever is known is written out (JSON with the case record,
and a PDF) with a receipt (the file and its sha256), so the station can prove what was sent and
when. With report.delivery, the courier (central/reports/delivery.py) mails and uploads it on
its next round, retrying inside the remaining time.

Every step takes `now`: tests drive the clock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from broker.payloads import RuleName
from central import messages
from central.db.models import (
    AlertEvent,
    AlertNotification,
    Case,
    Event,
    EventReview,
    ExpressReport,
)
from central.reports.daily import anomaly_item, case_record
from models.species import Catalogue

if TYPE_CHECKING:
    from central.config import CentralConfig

log = logging.getLogger(__name__)

DEADLINE = timedelta(hours=2)
EXPRESS_TITLE = "陆生野生动物疫源疫病快报"
# Written this long before the deadline, so that mail and upload, with their retries, still
# reach the bureau inside the 2 hours (central/reports/delivery.py sends it on its next round).
SEND_AHEAD = timedelta(minutes=15)
REMINDERS = (timedelta(minutes=60), timedelta(minutes=90))
PROTECTED = ("I", "II")


def needs_express(row: Event, catalogue: Catalogue) -> bool:
    """A mortality cluster, or a suspected death of a nationally protected species."""
    if row.rule == RuleName.MORTALITY_CLUSTER:
        return True
    if row.rule != RuleName.MOTIONLESS_BIRD or not row.species_scientific:
        return False
    species = catalogue.get(row.species_scientific)
    return species is not None and species.protection_level in PROTECTED


def open_if_due(
    *, session: Session, row: Event, catalogue: Catalogue, confirmed_at: datetime
) -> ExpressReport | None:
    """Open the express report of a just-confirmed event when it needs one (once per event)."""
    if not needs_express(row, catalogue):
        return None
    existing = session.scalar(
        sa.select(ExpressReport).where(ExpressReport.event_id == row.event_id)
    )
    if existing is not None:
        return existing
    report = ExpressReport(
        event_id=row.event_id,
        site=row.site,
        opened_at=confirmed_at,
        deadline=confirmed_at + DEADLINE,
    )
    session.add(report)
    session.flush()
    log.warning(
        "express report %d opened for event %s: due %s",
        report.id,
        row.event_id,
        report.deadline.isoformat(),
    )
    return report


@dataclass(frozen=True, slots=True)
class Written:
    report_id: int
    path: Path
    sha256: str


def _remind(session: Session, report: ExpressReport, now: datetime) -> int:
    """Reminders to everyone the event's alert has paged (none without an alert)."""
    alert_id = session.scalar(
        sa.select(AlertEvent.alert_id).where(AlertEvent.event_id == report.event_id)
    )
    if alert_id is None:
        log.warning("express report %d: no alert to remind through", report.id)
        return 0
    phones = session.execute(
        sa.select(AlertNotification.user_name, AlertNotification.phone)
        .where(AlertNotification.alert_id == alert_id, AlertNotification.template == "alert")
        .distinct()
    ).all()
    for user_name, phone in phones:
        session.add(
            AlertNotification(
                alert_id=alert_id,
                step=-2,
                round=0,
                user_name=user_name,
                phone=phone,
                template="reminder",
                reference=str(uuid.uuid4()),
                state="pending",
                created_at=now,
            )
        )
    return len(phones)


def _known(
    session: Session, report: ExpressReport, tz: ZoneInfo, config: CentralConfig | None
) -> dict[str, object]:
    """What is known of the case at the deadline: the event, its reviews, the case record (the
    daily report's fields, `CaseRecord`, when `config` gives the catalogue)."""
    event = session.scalar(sa.select(Event).where(Event.event_id == report.event_id))
    assert event is not None
    reviews = session.scalars(
        sa.select(EventReview)
        .where(EventReview.event_id == report.event_id)
        .order_by(EventReview.reviewed_at)
    ).all()
    case = session.scalar(sa.select(Case).where(Case.event_id == report.event_id))
    return {
        "schema_version": 1,
        "kind": "express_report",
        "title_zh": EXPRESS_TITLE,
        "site": report.site,
        "opened_at": report.opened_at.astimezone(tz).isoformat(),
        "deadline": report.deadline.astimezone(tz).isoformat(),
        "event": {
            "event_id": event.event_id,
            "rule": event.rule,
            "captured_at": event.captured_at.astimezone(tz).isoformat(),
            "camera": event.camera,
            "node": event.node,
            "species_scientific": event.species_scientific,
            "species_chinese": event.species_chinese,
            "count": event.count,
            "message_zh": event.message_zh,
            "evidence": [f.name for f in event.evidence],
        },
        "reviews": [
            {
                "decision": r.decision,
                "reviewer": r.reviewer,
                "note": r.note,
                "at": r.reviewed_at.astimezone(tz).isoformat(),
            }
            for r in reviews
        ],
        "case": None
        if case is None
        else (
            case_record(case, event, tz, config).model_dump(mode="json")
            if config is not None
            else {"id": case.id, "opened_by": case.opened_by, "status": case.status}
        ),
    }


def _write_pdf(
    session: Session,
    report: ExpressReport,
    known: dict[str, object],
    path: Path,
    tz: ZoneInfo,
    config: CentralConfig | None,
    now: datetime,
) -> Path | None:
    """The printable 快报 beside its JSON (needs the config: catalogue, evidence, font)."""
    from central.reports.pdf import PdfError, render_express_pdf

    if config is None:
        return None
    event = session.scalar(sa.select(Event).where(Event.event_id == report.event_id))
    case = session.scalar(sa.select(Case).where(Case.event_id == report.event_id))
    assert event is not None
    item = anomaly_item(event, tz, config, late=False)
    site = config.sites.get(report.site)
    facts: list[list[object]] = [
        ["站点 Site", site.name_zh if site else report.site],
        [
            "事件 Event",
            f"{item.rule_zh} · {item.species_chinese or item.category_zh} ×{item.count}",
        ],
        ["拍摄时间 Captured", item.time.strftime("%Y-%m-%d %H:%M:%S")],
        ["相机 Camera", f"{item.camera}（{item.node}）"],
        ["确认时间 Confirmed", report.opened_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")],
        ["报告时限 Deadline", report.deadline.astimezone(tz).strftime("%Y-%m-%d %H:%M")],
        ["说明 Description", item.message],
    ]
    for r in known.get("reviews") or []:  # type: ignore[attr-defined]
        facts.append(
            ["审核 Review", f"{messages.review_zh(r['decision'])} {r['reviewer']} {r['note']}"]
        )
    try:
        data = render_express_pdf(
            title=EXPRESS_TITLE,
            facts=facts,
            case=case_record(case, event, tz, config) if case else None,
            evidence=item,
            as_of=now,
            evidence_dir=config.evidence_dir,
            font=config.report.pdf_font,
        )
    except PdfError as exc:
        log.error("express report %d: no PDF (%s); the JSON is written", report.id, exc)
        return None
    except Exception:  # the JSON, written already, is what must go out in time
        log.exception("express report %d: PDF failed; the JSON is written", report.id)
        return None
    _write(path, data)
    return path


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def tick(
    *,
    session: Session,
    now: datetime,
    out_dir: Path,
    tz: ZoneInfo,
    config: CentralConfig | None = None,
) -> list[Written]:
    """Reminders that are due, and the reports whose deadline has come: written with a receipt."""
    written: list[Written] = []
    reports = session.scalars(
        sa.select(ExpressReport)
        .where(ExpressReport.sent_at.is_(None))
        .order_by(ExpressReport.deadline)
        .with_for_update()
    ).all()
    for report in reports:
        if report.reminded_60_at is None and now >= report.opened_at + REMINDERS[0]:
            _remind(session, report, now)
            report.reminded_60_at = now
        if report.reminded_90_at is None and now >= report.opened_at + REMINDERS[1]:
            _remind(session, report, now)
            report.reminded_90_at = now
        if now < report.deadline - SEND_AHEAD:
            continue
        known = _known(session, report, tz, config)
        body = json.dumps(known, ensure_ascii=False, indent=2).encode()
        stamp = report.opened_at.astimezone(tz).strftime("%Y%m%d-%H%M")
        path = out_dir / f"express_{report.site}_{stamp}_{report.event_id[:8]}.json"
        digest = hashlib.sha256(body).hexdigest()
        _write(path, body)
        pdf = _write_pdf(session, report, known, path.with_suffix(".pdf"), tz, config, now)
        receipt = {
            "file": path.name,
            "sha256": digest,
            "pdf": pdf.name if pdf else None,
            "written_at": now.astimezone(tz).isoformat(),
            "deadline": report.deadline.astimezone(tz).isoformat(),
            "delivered_to": "file; with report.delivery, also mail and upload (报送 page)",
        }
        _write(path.with_suffix(".receipt.json"), json.dumps(receipt, ensure_ascii=False).encode())
        report.sent_at, report.path, report.sha256 = now, str(path), digest
        written.append(Written(report.id, path, digest))
        log.warning(
            "express report %d written at its deadline: %s (sha256 %s)", report.id, path, digest
        )
    return written
