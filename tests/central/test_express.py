"""The 2-hour clock of the express report (快报), on a driven clock: opened by confirming a
mortality cluster or a protected animal's death, reminders at 60 and 90 minutes to those the
alert paged, written with a receipt at the deadline."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from central import alerting, crud, express, review
from central.config import CentralConfig
from central.db.models import AlertNotification, Case, Event, ExpressReport
from central.web import queries
from tests.central.test_alerting import CONFIG, T0, TZ, death
from tests.central.test_alerting import session as session

IBIS = {"scientific_name": "Nipponia nippon", "chinese_name": "朱鹮", "confidence": 0.9}


def stored(session: Session, **overrides: Any) -> Event:
    """An anomaly stored and paged (its alert has told the duty officer)."""
    event = death(T0, **overrides)
    crud.insert_event(session=session, payload=event, received_at=T0)
    alerting.observe(session=session, event=event, config=CONFIG, now=T0)
    alerting.tick(session=session, config=CONFIG, now=T0 + timedelta(seconds=30), tz=TZ)
    session.flush()
    row = crud.get_event(session=session, event_id=str(event.event_id))
    assert row is not None
    return row


def confirm(session: Session, row: Event, config: CentralConfig, at: datetime) -> None:
    review.decide(
        session=session,
        event_id=row.event_id,
        decision="confirmed",
        reviewer="wang",
        note="现场确认",
        at=at,
        catalogue=config.species_catalogue,
    )


def reminders(session: Session) -> int:
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(AlertNotification)
            .where(AlertNotification.template == "reminder")
        )
        or 0
    )


def test_a_protected_death_runs_the_two_hour_clock(
    session: Session, central_config: CentralConfig, tmp_path: Path
) -> None:
    row = stored(session, species=IBIS)
    confirmed = T0 + timedelta(minutes=5)
    confirm(session, row, central_config, confirmed)
    report = session.scalars(sa.select(ExpressReport)).one()
    assert report.deadline == confirmed + timedelta(hours=2)

    queries.open_case(session=session, row=row, opened_by="wang", now=confirmed)
    case = session.scalars(sa.select(Case)).one()
    case.dead_count, case.measures = 1, ["harmless_disposal"]

    def tick(minutes: float) -> list[express.Written]:
        done = express.tick(
            session=session,
            now=confirmed + timedelta(minutes=minutes),
            out_dir=tmp_path,
            tz=TZ,
            config=central_config,
        )
        session.flush()
        return done

    assert tick(59.9) == [] and reminders(session) == 0
    assert tick(60) == [] and reminders(session) == 1  # the duty officer the alert paged
    assert tick(89) == [] and reminders(session) == 1
    assert tick(90) == [] and reminders(session) == 2
    assert tick(104.9) == []
    [written] = tick(105)  # 15 min ahead: mail and upload still reach the bureau in 2 hours
    body = written.path.read_bytes()
    assert hashlib.sha256(body).hexdigest() == written.sha256 == report.sha256
    data = json.loads(body)
    assert data["event"]["species_chinese"] == "朱鹮" and data["reviews"][0]["note"] == "现场确认"
    # the case record with the daily report's fields (CaseRecord), what is missing listed
    assert data["case"]["dead_count"] == 1 and data["case"]["measures_zh"] == ["无害化处理"]
    assert data["case"]["species_chinese"] == "朱鹮" and "临床症状" in data["case"]["missing_zh"]
    receipt = json.loads(written.path.with_suffix(".receipt.json").read_text(encoding="utf-8"))
    assert receipt["sha256"] == written.sha256 and receipt["file"] == written.path.name
    assert tick(500) == [] and reminders(session) == 2  # written once, reminded twice


def test_which_confirmations_open_an_express_report(
    session: Session, central_config: CentralConfig
) -> None:
    egret = stored(session)  # a little egret: not nationally protected
    confirm(session, egret, central_config, T0)
    cluster = stored(session, rule="mortality_cluster", severity="critical", camera="cam2")
    dismissed = stored(session, species=IBIS, camera="cam3")
    review.decide(
        session=session,
        event_id=dismissed.event_id,
        decision="dismissed",
        reviewer="wang",
        note="",
        at=T0,
        catalogue=central_config.species_catalogue,
        reason="wrong_species",
    )
    confirm(session, cluster, central_config, T0)
    confirm(session, cluster, central_config, T0 + timedelta(minutes=3))  # once per event
    opened = session.scalars(sa.select(ExpressReport.event_id)).all()
    assert opened == [cluster.event_id]
