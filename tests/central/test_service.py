"""CentralService end to end: migrate, ingest from the broker, SMS, HTTP on a real port."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from broker.topics import event_topic
from broker.validate import encode
from central.app import CentralService
from central.config import CentralConfig
from tests.central.conftest import make_event
from tests.central.staff import auth, with_staff
from tests.helpers import free_port, wait_for


def test_service_runs_everything(
    central_config: CentralConfig, publisher: Callable[[str, bytes], None]
) -> None:
    port = free_port()
    cfg = with_staff(
        central_config.model_copy(
            update={"http": central_config.http.model_copy(update={"port": port})}
        )
    )
    service = CentralService(cfg)
    service.start()
    try:
        alert = make_event(
            kind="anomaly", category="dog", rule="free_roaming_dog", severity="critical"
        )
        topic = event_topic("changxing", "cx-01")
        assert all(i.wait_connected(10) for i in service.ingestors)  # SUBACKs are in
        publisher(topic, encode(alert))
        assert wait_for(lambda: service.stored_events() == 1, 15)
        assert wait_for(lambda: cfg.sms_file.exists() and cfg.sms_file.read_text("utf-8") != "", 10)
        assert "流浪犬进入保护区" in cfg.sms_file.read_text(encoding="utf-8")
        assert "【WildWatch紧急】" in cfg.sms_file.read_text(encoding="utf-8")
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: _ok(f"{base}/healthz"), 10)
        body = httpx.get(f"{base}/api/events", headers=auth()).json()
        assert body["count"] == 1 and body["data"][0]["event_id"] == str(alert.event_id)
        assert service.counters.stored == 1
    finally:
        service.stop()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
