"""SIGKILL of central while it hands an SMS to the gateway: the SMS goes out after the restart."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from broker.topics import event_topic
from broker.validate import encode
from central.app import CentralService
from central.config import load_config
from central.db.models import SmsMessage
from tests.factories import make_event
from tests.faults.conftest import (
    NODE,
    SITE,
    Db,
    Proc,
    central_settings,
    node_link,
    wait_ingest_live,
    write_config,
)
from tests.helpers import MosquittoServer, wait_for


def _sms(db: Db) -> list[tuple[str, int]]:
    with db.engine.connect() as conn:
        return [
            (r.status, r.attempts)
            for r in conn.execute(sa.select(SmsMessage.status, SmsMessage.attempts))
        ]


def test_central_killed_mid_send_pages_after_restart(
    tmp_path: Path,
    broker: MosquittoServer,
    database_url: str,
    db: Db,
    procs: Callable[..., Proc],
) -> None:
    # The file back-end's file is a FIFO nobody reads: opening it blocks, so central is caught
    # in the middle of a send with the row marked 'sending' and committed.
    gateway = tmp_path / "gateway.jsonl"
    os.mkfifo(gateway)
    settings = central_settings(tmp_path, database_url, broker.port)
    settings["alerts"]["sms_file"] = str(gateway)
    config = write_config(tmp_path, settings)
    central = procs("central", f"--config={config}")
    central.start()
    wait_ingest_live(broker.port, db)
    link = node_link(broker.port)
    try:
        alert = make_event(
            site=SITE,
            node=NODE,
            kind="anomaly",
            category="person",
            rule="night_intrusion",
            severity="alert",
        )
        assert link.publish(event_topic(SITE, NODE), encode(alert), qos=1).wait(10)
        assert wait_for(lambda: _sms(db) == [("sending", 1)], 20), _sms(db)
        central.kill()
        gateway.unlink()  # the gateway works again (the back-end creates a plain file)
        restarted = CentralService(load_config(config), serve_http=False)
        restarted.start()
        try:
            assert wait_for(lambda: _sms(db) == [("sent", 2)], 20), _sms(db)
        finally:
            restarted.stop()
    finally:
        link.stop()
    lines = gateway.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and "夜间人员/车辆闯入" in lines[0]
