"""The durable outbox: numbering, atomic media records, survival across reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from broker.validate import parse_message
from edge.outbox import Outbox
from tests.edge.conftest import TinyDisk
from tests.factories import make_event


def test_numbers_events_in_order_and_survives_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    stored = box.add([make_event(), make_event()], media_sha256="aa", media_path="x.jpg")
    stored += box.add([make_event()])
    assert [e.seq for e in stored] == [1, 2, 3]
    assert box.seen_media("aa") and not box.seen_media("bb")
    box.close()

    again = Outbox(tmp_path / "outbox.db")
    pending = again.pending()
    assert [p.seq for p in pending] == [1, 2, 3]
    _, ev = parse_message(pending[0].topic, pending[0].payload)
    assert ev == stored[0]
    assert again.remove([1, 2]) == 2
    assert [p.seq for p in again.pending()] == [3]
    assert again.add([make_event()])[0].seq == 4  # never reuses a number
    assert again.depth() == 2 and again.last_seq() == 4


def test_failed_add_stores_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    dup = make_event()
    box.add([dup])
    try:
        box.add([make_event(), dup], media_sha256="cc")  # same event id twice: rejected whole
    except Exception as exc:  # sqlite3.IntegrityError
        assert "UNIQUE" in str(exc)
    else:
        raise AssertionError("duplicate event id was accepted")
    assert box.depth() == 1 and box.last_seq() == 1 and not box.seen_media("cc")


def test_full_disk_raises_the_real_error_and_stores_nothing(tiny_disk: TinyDisk) -> None:
    box = Outbox(tiny_disk.root / "outbox.db")
    box.add([make_event()])
    tiny_disk.fill()
    with pytest.raises(sqlite3.OperationalError) as failed:
        box.add([make_event() for _ in range(50)], media_sha256="dd")
    # SQLite has rolled back by itself; a second ROLLBACK would hide this behind
    # "cannot rollback - no transaction is active"
    assert failed.value.sqlite_errorcode == sqlite3.SQLITE_FULL, failed.value
    assert box.last_seq() == 1 and not box.seen_media("dd")
    tiny_disk.free()
    assert [e.seq for e in box.add([make_event()], media_sha256="dd")] == [2]
    assert box.seen_media("dd") and box.depth() == 2
    box.close()


def test_an_older_outbox_gains_the_upload_retry_columns(tmp_path: Path) -> None:
    """An outbox written before uploads kept attempts and reasons still opens and uploads."""
    path = tmp_path / "outbox.db"
    with sqlite3.connect(path) as old:  # evidence_uploads as the first release made it
        old.execute(
            "CREATE TABLE evidence_uploads (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL,"
            " name TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,"
            " uploaded INTEGER NOT NULL DEFAULT 0, restarts INTEGER NOT NULL DEFAULT 0,"
            " state TEXT NOT NULL DEFAULT 'pending', created_at REAL NOT NULL,"
            " UNIQUE (event_id, name))"
        )
        old.execute(
            "INSERT INTO evidence_uploads (event_id, name, path, sha256, size, created_at)"
            " VALUES ('e1', 'a.jpg', '/x/a.jpg', 'ab', 10, 0)"
        )
    old.close()
    box = Outbox(path)
    (upload,) = box.evidence_pending()
    assert (upload.name, upload.attempts) == ("a.jpg", 0)
    box.evidence_retry_later(upload.id, reason="unreadable", retry_at=2e9)
    assert box.evidence_pending() == []  # waits until retry_at
    assert box.evidence_problems() == [("a.jpg", "pending", "unreadable")]
    box.close()
