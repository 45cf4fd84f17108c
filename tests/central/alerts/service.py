"""A running central with the duty pager and one duty officer on the roster, for the tests
that page through a provider end to end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

from central import accounts
from central.app import CentralService
from central.config import CentralConfig
from central.db.models import AlertNotification, User
from central.roster import DutyRole
from tests.central.conftest import on_duty_all_day
from tests.central.web.station import add_people

DUTY_PHONE = "13800000001"


@contextlib.contextmanager
def paging_service(config: CentralConfig) -> Iterator[CentralService]:
    """Central started with `config`; 王伟 (staff, phone DUTY_PHONE) on duty all day at
    changxing; the ingest connected."""
    svc = CentralService(config)
    svc.start()
    try:
        assert svc.session_factory is not None
        with svc.session_factory.begin() as session:
            add_people(
                session,
                {"wang": (accounts.Role.STAFF, ["changxing"], "王伟")},
                known_sites=svc.config.sites,
            )
            session.query(User).filter_by(name="wang").one().phone = DUTY_PHONE
            on_duty_all_day(session, user_name="wang", role=DutyRole.DUTY)
        assert all(i.wait_connected(10) for i in svc.ingestors)
        yield svc
    finally:
        svc.stop()


def notifications(svc: CentralService) -> list[AlertNotification]:
    """Every notification row, oldest first."""
    assert svc.session_factory is not None
    with svc.session_factory() as session:
        return list(session.scalars(sa.select(AlertNotification).order_by(AlertNotification.id)))
