"""Shared fixtures: the real shared data, a real Mosquitto per session, a real database per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import MosquittoServer, clear_retained_statuses, free_port

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WILDWATCH_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository (real images and models); the suite needs it."""
    if not (SHARED / "models").is_dir():
        pytest.fail(f"shared folder with models and data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def images_dir(shared_dir: Path) -> Path:
    """Real camera-trap frames and bird photos."""
    return shared_dir / "data" / "images"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    """A model store filled from ../shared/models through the registry (sha256 checked)."""
    from models.registry import import_dir

    dest = tmp_path_factory.mktemp("models")
    import_dir(shared_dir / "models", dest)
    return dest


@pytest.fixture(scope="session")
def mosquitto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """A real mosquitto on a free loopback port for the session (anonymous, persistence on)."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed (.ci/run installs it with apt-get)")
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def mosquitto(mosquitto_server: MosquittoServer) -> Iterator[MosquittoServer]:
    """The session's mosquitto; the retained node statuses a test leaves are removed after it,
    so one test's stopped node is not another test's offline alert."""
    yield mosquitto_server
    clear_retained_statuses(mosquitto_server.port)


@pytest.fixture()
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: SQLite by default, PostgreSQL when
    WILDWATCH_TEST_DATABASE_URL points at a server (a new database is created and dropped)."""
    base = os.environ.get("WILDWATCH_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path / 'central.db'}"
        return
    import sqlalchemy as sa

    name = f"ww_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
