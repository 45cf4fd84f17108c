"""The console over HTTP as a browser would use it: login, queue, review, browse, export, status."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import HeartbeatPayload
from central import crud, nodes
from central.db.models import EventReview
from tests.central.conftest import make_event
from tests.central.web.conftest import Seeded

Login = Callable[[str], tuple[TestClient, str]]


def test_queue_lists_anomalies_first_with_chinese_labels(login: Login, seeded: Seeded) -> None:
    client, _ = login("wang")
    page = client.get("/queue")
    assert page.status_code == 200
    html = page.text
    assert "待处理" in html and "鸟类静止" in html and "白鹭" in html
    anomaly = html.index(f"item-{seeded.cx_anomaly.event_id}")
    observation = html.index(f"item-{seeded.cx_observation.event_id}")
    assert anomaly < observation
    assert str(seeded.xz_anomaly.event_id) not in html  # another site's event


def test_open_then_review_is_audited(
    login: Login, seeded: Seeded, session_factory: sessionmaker[Session]
) -> None:
    client, csrf = login("wang")
    event_id = seeded.cx_anomaly.event_id
    # not opened yet: refused
    r = client.post(
        f"/events/{event_id}/review", data={"decision": "confirmed", "csrf_token": csrf}
    )
    assert r.status_code == 409
    page = client.get(f"/events/{event_id}")
    assert page.status_code == 200 and "打开查看 opened" in page.text
    r = client.post(
        f"/events/{event_id}/review",
        data={
            "decision": "dismissed",
            "reason": "wrong_species",
            "note": "是苍鹭",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    with session_factory() as session:
        review = session.query(EventReview).filter_by(event_id=str(event_id)).one()
        assert (review.before, review.decision, review.reason, review.reviewer) == (
            "unreviewed",
            "dismissed",
            "wrong_species",
            "wang",
        )
    page = client.get(f"/events/{event_id}").text
    assert "物种识别错误" in page and "是苍鹭" in page and "待处理 unreviewed → 已排除" in page
    assert f"item-{event_id}" not in client.get("/queue").text


def test_bulk_review_applies_only_to_opened_items(login: Login, seeded: Seeded) -> None:
    client, csrf = login("wang")
    opened, unopened = seeded.cx_anomaly.event_id, seeded.cx_observation.event_id
    client.get(f"/events/{opened}")
    r = client.post(
        "/events/bulk",
        data={
            "event_ids": [str(opened), str(unopened)],
            "decision": "confirmed",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 200
    assert "确认 confirmed 1" in r.text and "1 not opened yet" in r.text
    queue = client.get("/queue").text
    assert f"item-{opened}" not in queue and f"item-{unopened}" in queue


def test_bureau_reads_every_site_but_cannot_review(login: Login, seeded: Seeded) -> None:
    client, csrf = login("sheng")
    html = client.get("/queue").text
    assert str(seeded.cx_anomaly.event_id) in html and str(seeded.xz_anomaly.event_id) in html
    event_id = seeded.xz_anomaly.event_id
    assert "确认 Confirm" not in client.get(f"/events/{event_id}").text
    r = client.post(
        f"/events/{event_id}/review", data={"decision": "confirmed", "csrf_token": csrf}
    )
    assert r.status_code == 403


def test_evidence_thumbnail_and_crop_are_small_jpegs(login: Login, seeded: Seeded) -> None:
    client, _ = login("wang")
    base = f"/media/{seeded.cx_anomaly.event_id}/frame.jpg"
    full = client.get(base)
    thumb = client.get(f"{base}?size=thumb")
    crop = client.get(f"{base}?crop=0")
    for r in (full, thumb, crop):
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    big = Image.open(io.BytesIO(full.content)).size
    small = Image.open(io.BytesIO(thumb.content)).size
    assert max(small) == 640 and max(big) > 640
    assert len(thumb.content) < len(full.content)
    assert max(Image.open(io.BytesIO(crop.content)).size) <= 320
    assert client.get(f"{base}?crop=5").status_code == 404


def test_browse_filters_and_exports(login: Login, seeded: Seeded) -> None:
    client, _ = login("sheng")
    html = client.get("/events", params={"rule": "free_roaming_dog"}).text
    assert "共 1 条" in html and "游荡犬" in html
    html = client.get("/events", params={"species": "白鹭"}).text
    assert "共 1 条" in html
    assert "gallery" in client.get("/events", params={"view": "gallery"}).text
    rows = list(
        csv.reader(io.StringIO(client.get("/events/export.csv").content.decode("utf-8-sig")))
    )
    assert rows[0][0] == "拍摄时间 captured" and len(rows) == 4
    sheet = load_workbook(io.BytesIO(client.get("/events/export.xlsx").content)).active
    assert sheet is not None and sheet.max_row == 4
    md = json.loads(client.get("/events/export.md.json", params={"site": "changxing"}).content)
    assert len(md["images"]) == 2
    det = md["images"][0]["detections"][0]
    assert det["category"] == "1" and ["1", 0.91] in det["classifications"]
    assert md["classification_categories"]["1"] == "bird"


def test_status_marks_offline_nodes(login: Login, seeded: Seeded) -> None:
    client, _ = login("wang")
    html = client.get("/status").text
    assert "站点与设备" in html and "长兴" in html
    assert "德清" not in html  # the other site is not this person's


def test_exports_never_write_a_formula(
    login: Login, seeded: Seeded, session_factory: sessionmaker[Session]
) -> None:
    formula = '=HYPERLINK("http://evil.example","点我")'
    event = make_event(seq=7, message_zh=formula + "\x07")
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    client, _ = login("wang")
    text = client.get("/events/export.csv").content.decode("utf-8-sig")
    row = next(r for r in csv.reader(io.StringIO(text)) if r[-1] == str(event.event_id))
    assert row[14] == "'" + formula  # the message column, as text; the bell character dropped
    sheet = load_workbook(io.BytesIO(client.get("/events/export.xlsx").content)).active
    assert sheet is not None
    cells = [c for r in sheet.iter_rows() for c in r if c.value == "'" + formula]
    assert len(cells) == 1 and cells[0].data_type == "s"


def test_dismissal_needs_a_reason(login: Login, seeded: Seeded) -> None:
    client, csrf = login("wang")
    event_id = seeded.cx_anomaly.event_id
    client.get(f"/events/{event_id}")
    for reason in ("", "not-a-reason"):
        r = client.post(
            f"/events/{event_id}/review",
            data={"decision": "dismissed", "reason": reason, "csrf_token": csrf},
        )
        assert r.status_code == 422 and "排除原因" in r.json()["detail"]
    r = client.post(
        "/events/bulk",
        data={"event_ids": [str(event_id)], "decision": "dismissed", "csrf_token": csrf},
    )
    assert r.status_code == 422


def test_filter_links_keep_awkward_values(login: Login, seeded: Seeded) -> None:
    client, _ = login("wang")
    html = client.get("/events", params={"species": "白鹭 & #1", "camera": "cam1"}).text
    assert "species=%E7%99%BD%E9%B9%AD+%26+%231" in html  # url-encoded in every link
    assert 'href="/events/export.csv?camera=cam1&amp;species=' in html
    assert client.get("/events", params={"site": "Not A Site"}).status_code == 422


def test_status_timeline_shows_a_silent_nodes_outage_in_local_time(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    seen = now - timedelta(hours=3)
    beat = HeartbeatPayload(
        site="changxing",
        node="cx-09",
        sent_at=seen,
        uptime_s=5,
        outbox_depth=4,
        disk_free_mb=900,
        software_version="0.1.0",
        cameras={"cam1": "frozen"},
    )
    with session_factory.begin() as session:
        crud.record_heartbeat(session=session, payload=beat, received_at=seen)
        raised = nodes.mark_silent_offline(session=session, now=now, offline_after_s=600)
    assert len(raised) == 1
    client, _ = login("wang")
    html = client.get("/status").text
    assert 'id="node-changxing-cx-09"' in html and "离线 offline" in html
    local = seen.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%m-%d %H:%M")
    assert f'title="离线 offline {local} – 至今 now"' in html  # since its last heartbeat
    assert "cam1: frozen" in html and ">4<" in html


def test_confirm_can_open_a_case_for_the_report(login: Login, seeded: Seeded) -> None:
    client, csrf = login("wang")
    event_id = seeded.cx_anomaly.event_id
    assert "确认并立案" in client.get(f"/events/{event_id}").text
    r = client.post(
        f"/events/{event_id}/review",
        data={"decision": "confirmed", "open_case": "true", "csrf_token": csrf},
    )
    assert r.status_code == 200
    page = client.get(f"/events/{event_id}").text
    assert "已立案 Case #" in page and "确认并立案" not in page
    # a dismissal never opens one
    other = seeded.cx_observation.event_id
    client.get(f"/events/{other}")
    client.post(
        f"/events/{other}/review",
        data={
            "decision": "dismissed",
            "reason": "duplicate",
            "open_case": "true",
            "csrf_token": csrf,
        },
    )
    assert "已立案" not in client.get(f"/events/{other}").text


def test_confirming_a_protected_death_shows_the_express_clock(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    ibis = {"scientific_name": "Nipponia nippon", "chinese_name": "朱鹮", "confidence": 0.9}
    event = make_event(kind="anomaly", rule="motionless_bird", severity="alert", species=ibis)
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    client, csrf = login("wang")
    assert "快报" not in client.get(f"/events/{event.event_id}").text
    client.post(
        f"/events/{event.event_id}/review", data={"decision": "confirmed", "csrf_token": csrf}
    )
    page = client.get(f"/events/{event.event_id}").text
    assert "快报 Express report" in page
    assert "剩余 119 分钟" in page or "剩余 120 分钟" in page
