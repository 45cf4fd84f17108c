"""Engine and session factory (SQLite gets WAL, a busy timeout and foreign keys), and telling
an unavailable database from a refused statement."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

# Writers wait this long for SQLite's lock instead of failing at once (API reads vs ingest writes).
SQLITE_BUSY_TIMEOUT_MS = 5000


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """Create an engine; for SQLite also create the directory and set pragmas per connection."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        from pathlib import Path

        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


def make_session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    """Session factory; objects stay readable after commit (the ingest hands them on)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


# PostgreSQL SQLSTATE classes that say the database cannot take any write right now, whatever
# the message: 08 connection, 25 read-only transaction (a standby before promotion),
# 40 serialization failure or deadlock, 42 undefined table or no privilege (schema or grants not
# what this code expects), 53 disk, memory or connections exhausted, 55 lock not available,
# 57 admin shutdown or cancel, 58 I/O, XX internal. Every other class (22 data, 23 integrity,
# 54 too large, P0 raised by a trigger) is about the statement, so about the message in it.
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "25", "40", "42", "53", "55", "57", "58", "XX"})


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database is down or unusable (retry later), False when it
    was refused for what was being written (so the message at fault can be set aside)."""
    if isinstance(exc, sa.exc.DisconnectionError | sa.exc.TimeoutError):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False  # bind conversions, driver overflow, our own bugs: not an outage
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES
    # No SQLSTATE: SQLite, or a connection that failed before the server answered. SQLite's
    # OperationalError is locked, I/O, disk full, read-only or no such table.
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
