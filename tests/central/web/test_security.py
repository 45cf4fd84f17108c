"""The console's walls: login, CSRF, sites, cookie flags, login throttle, escaping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from central.accounts import LoginThrottle
from central.db.models import Event
from central.web.pages import auth
from tests.central.conftest import make_event
from tests.central.web.conftest import Seeded, csrf_of, log_in
from tests.central.web.station import PASSWORD

Login = Callable[[str], tuple[TestClient, str]]
PAGES = ["/queue", "/events", "/status", "/events/export.csv", "/events/export.xlsx"]


def _submit(client: TestClient, login_page: str, next_url: str) -> httpx.Response:
    """Post the login form of `login_page` as wang with the right password."""
    data = {
        "name": "wang",
        "password": PASSWORD,
        "csrf_token": csrf_of(login_page),
        "next": next_url,
    }
    response: httpx.Response = client.post("/login", data=data, follow_redirects=False)
    return response


def test_nothing_without_login(app_client: TestClient, seeded: Seeded) -> None:
    event = seeded.cx_anomaly.event_id
    for path in [*PAGES, f"/events/{event}"]:
        r = app_client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    r = app_client.get(f"/media/{event}/frame.jpg")
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/plain")
    r = app_client.post(
        f"/events/{event}/review", data={"decision": "confirmed"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert app_client.get("/static/app.css").status_code == 200  # assets need no login


def test_login_redirects_back_but_never_off_site(app_client: TestClient) -> None:
    page = app_client.get("/login", params={"next": "//evil.example/x"})
    assert 'name="next" value="/"' in page.text
    page = app_client.get("/login", params={"next": "/events?site=changxing"})
    r = _submit(app_client, page.text, "https://evil.example/")
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_session_cookie_flags(app_client: TestClient) -> None:
    page = app_client.get("/login")
    r = app_client.post(
        "/login",
        data={"name": "wang", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    cookie = r.headers["set-cookie"].lower()
    assert "ww_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http on the station's LAN
    behind_tls = TestClient(app_client.app, base_url="https://central.example")
    page = behind_tls.get("/login")
    r = behind_tls.post(
        "/login",
        data={"name": "wang", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert "secure" in r.headers["set-cookie"].lower()


def test_csrf_is_required_on_every_change(login: Login, seeded: Seeded) -> None:
    client, csrf = login("wang")
    event = seeded.cx_anomaly.event_id
    client.get(f"/events/{event}")
    for data in ({}, {"csrf_token": "forged"}):
        r = client.post(f"/events/{event}/review", data={"decision": "confirmed", **data})
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 403
    # the header htmx sends is accepted like the form field
    r = client.post(
        f"/events/{event}/review",
        data={"decision": "confirmed"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 200 and "decided" in r.headers["HX-Trigger"]
    # a login form posted without its own token is refused too
    fresh = TestClient(client.app)
    r = fresh.post("/login", data={"name": "wang", "password": PASSWORD})
    assert r.status_code == 403


def test_another_sites_event_image_and_export_are_hidden(login: Login, seeded: Seeded) -> None:
    client, csrf = login("li")  # xiazhuhu staff
    theirs = seeded.cx_anomaly.event_id  # changxing
    assert client.get(f"/events/{theirs}").status_code == 404
    assert client.get(f"/media/{theirs}/frame.jpg").status_code == 404
    assert client.get(f"/media/{theirs}/frame.jpg?size=thumb").status_code == 404
    r = client.post(f"/events/{theirs}/review", data={"decision": "confirmed", "csrf_token": csrf})
    assert r.status_code == 404
    r = client.post(
        "/events/bulk",
        data={"event_ids": [str(theirs)], "decision": "confirmed", "csrf_token": csrf},
    )
    assert "1 not opened yet" in r.text
    csv_text = client.get("/events/export.csv").content.decode("utf-8-sig")
    assert str(theirs) not in csv_text and str(seeded.xz_anomaly.event_id) in csv_text
    assert str(theirs) not in client.get("/events", params={"site": "changxing"}).text
    assert "长兴" not in client.get("/status").text


def test_logout_ends_the_session(login: Login) -> None:
    client, csrf = login("wang")
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_login_is_throttled(app_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "throttle", LoginThrottle(limit=3, window_s=900))
    for _ in range(3):
        page = app_client.get("/login")
        r = app_client.post(
            "/login",
            data={"name": "wang", "password": "wrong-password", "csrf_token": csrf_of(page.text)},
        )
        assert r.status_code == 401 and "用户名或密码错误" in r.text
    page = app_client.get("/login")
    r = app_client.post(
        "/login",
        data={"name": "wang", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 429 and "失败次数过多" in r.text  # even the right password waits


def test_throttle_window_passes() -> None:
    t = LoginThrottle(limit=2, window_s=60, address_limit=10, name_limit=3)
    t.failed(name="a", address="10.0.0.1", now=0)
    t.failed(name="a", address="10.0.0.1", now=1)
    assert t.retry_after(name="a", address="10.0.0.1", now=2) == pytest.approx(58)
    assert t.retry_after(name="b", address="10.0.0.1", now=2) == 0  # another name
    assert t.retry_after(name="a", address="10.0.0.2", now=2) == 0  # the owner at their desk
    t.failed(name="a", address="10.0.0.3", now=3)  # a third failure for the name anywhere
    assert t.retry_after(name="a", address="10.0.0.2", now=4) == pytest.approx(56)
    assert t.retry_after(name="a", address="10.0.0.1", now=61) == 0
    assert t.retry_after(name="a", address="10.0.0.1", now=200) == 0
    t.prune(now=200)
    assert len(t) == 0  # nothing kept once the window has passed


def test_throttle_keeps_no_key_for_names_that_never_failed() -> None:
    t = LoginThrottle()
    for i in range(1000):
        t.retry_after(name=f"user{i}", address="10.0.0.9", now=0)
    assert len(t) == 0


def test_markup_in_names_and_notes_is_escaped(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    evil = '<img src=x onerror="alert(1)">'
    event = make_event(
        kind="anomaly", rule="night_intrusion", category="person", severity="alert", message_zh=evil
    )
    # The wire pattern refuses such a camera id; the pages must not rely on it.
    row = crud.event_row(event, received_at=datetime.now(UTC))
    row["camera"] = "<script>alert(1)</script>"
    with session_factory.begin() as session:
        session.execute(sa.insert(Event).values(**row))
    client, csrf = login("wang")
    client.get(f"/events/{event.event_id}")
    client.post(
        f"/events/{event.event_id}/review",
        data={"decision": "dismissed", "reason": "other", "note": evil, "csrf_token": csrf},
    )
    for path in ("/queue", f"/events/{event.event_id}", "/events", "/status"):
        html = client.get(path).text
        assert "<script>alert(1)</script>" not in html, path
        assert '<img src=x onerror="alert(1)">' not in html, path
    html = client.get(f"/events/{event.event_id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html


def test_unknown_password_and_name_look_the_same(app_client: TestClient) -> None:
    page = app_client.get("/login")
    a = app_client.post(
        "/login", data={"name": "nobody", "password": "x" * 12, "csrf_token": csrf_of(page.text)}
    )
    page = app_client.get("/login")
    b = app_client.post(
        "/login", data={"name": "wang", "password": "x" * 12, "csrf_token": csrf_of(page.text)}
    )
    assert a.status_code == b.status_code == 401
    assert log_in(app_client, "wang")


def test_login_returns_to_the_whole_address(app_client: TestClient) -> None:
    r = app_client.get("/events?site=changxing&camera=cam1&page=2", follow_redirects=False)
    page = app_client.get(r.headers["location"])
    assert 'name="next" value="/events?site=changxing&amp;camera=cam1&amp;page=2"' in page.text
    r = _submit(app_client, page.text, "/events?site=changxing&camera=cam1&page=2")
    assert r.headers["location"] == "/events?site=changxing&camera=cam1&page=2"


def test_chart_data_cannot_break_out_of_its_script(
    login: Login, session_factory: sessionmaker[Session]
) -> None:
    name = "</script><!--<script>鹭"
    event = make_event(
        species={"scientific_name": "Egretta garzetta", "chinese_name": name, "confidence": 0.9},
        captured_at=datetime.now(UTC),
    )
    with session_factory.begin() as session:
        crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
    client, _ = login("wang")
    html = client.get("/stats").text
    block = html.split('id="stats-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block and "\\u003c/script\\u003e" in block
