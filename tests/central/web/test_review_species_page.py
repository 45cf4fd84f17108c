"""The console's confirm form names the species from the catalogue (with a list to pick from)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central import crud
from tests.central.web.conftest import Seeded

Login = Callable[[str], tuple[TestClient, str]]


def test_confirming_in_the_console_names_the_species_and_a_wrong_name_is_refused(
    login: Login, seeded: Seeded, session_factory: sessionmaker[Session]
) -> None:
    client, csrf = login("wang")
    event_id = str(seeded.cx_anomaly.event_id)
    page = client.get(f"/events/{event_id}")
    assert page.status_code == 200
    assert 'name="species"' in page.text and '<option value="Nipponia nippon">朱鹮' in page.text
    wrong = client.post(
        f"/events/{event_id}/review",
        data={"decision": "confirmed", "species": "Egretta imaginaria", "csrf_token": csrf},
    )
    assert wrong.status_code == 422 and "物种名录中没有" in wrong.text
    with session_factory() as session:
        row = crud.get_event(session=session, event_id=event_id)
        assert row is not None and row.review_status == "unreviewed"
    right = client.post(
        f"/events/{event_id}/review",
        data={"decision": "confirmed", "species": " Nipponia nippon ", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert right.status_code == 303
    with session_factory() as session:
        row = crud.get_event(session=session, event_id=event_id)
        assert row is not None
        assert (row.review_status, row.confirmed_species, row.confirmed_box) == (
            "confirmed",
            "Nipponia nippon",
            0,
        )
