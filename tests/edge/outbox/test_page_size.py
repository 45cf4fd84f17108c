"""The outbox's SQLite settings: small pages for a new file, same durability, old files kept."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from edge.outbox import Outbox
from tests.factories import make_event


def _pragma(path: Path, name: str) -> object:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(f"PRAGMA {name}").fetchone()[0]


def test_a_new_outbox_has_small_pages_wal_and_full_sync(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box.add([make_event()], media_sha256="aa", media_path="x.jpg")
    (synchronous,) = box._db.execute("PRAGMA synchronous").fetchone()
    assert synchronous == 2  # FULL: a commit the node acknowledged survives a power cut
    box.close()
    assert _pragma(tmp_path / "outbox.db", "page_size") == 1024
    assert _pragma(tmp_path / "outbox.db", "journal_mode") == "wal"


def test_an_outbox_made_with_4k_pages_opens_unchanged_with_its_events(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with closing(sqlite3.connect(path)) as db:  # as the versions before 1 KiB pages made it
        db.execute("PRAGMA page_size=4096")
        db.execute("PRAGMA journal_mode=WAL")
    old = Outbox(path)
    stored = old.add([make_event(), make_event()], media_sha256="aa", media_path="x.jpg")
    old.close()
    assert _pragma(path, "page_size") == 4096

    again = Outbox(path)
    assert [p.seq for p in again.pending()] == [e.seq for e in stored] == [1, 2]
    assert again.add([make_event()])[0].seq == 3 and again.seen_media("aa")
    again.close()
    assert _pragma(path, "page_size") == 4096
