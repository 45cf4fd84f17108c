"""A durable SQLite (WAL) outbox: the node's source of truth for events not yet acknowledged.

Events get their per-node sequence number in the same transaction that stores them, together
with the record that their media file was processed, so a crash either keeps both or neither.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from broker.payloads import EventPayload
from broker.topics import event_topic
from broker.validate import encode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    severity TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS media (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    processed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', 0);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One stored event waiting for the broker's acknowledgement."""

    seq: int
    event_id: str
    topic: str
    payload: bytes


class Outbox:
    """Thread-safe durable queue of encoded events, ordered by sequence number."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged commit survives a power cut
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def add(
        self,
        events: Sequence[EventPayload],
        *,
        media_sha256: str | None = None,
        media_path: str = "",
        media_status: str = "done",
        media_detail: str = "",
    ) -> list[EventPayload]:
        """Store events atomically, numbering them; optionally mark their media as processed.

        Returns the events as stored (with their sequence numbers).
        """
        stored: list[EventPayload] = []
        with self._added:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                (last,) = cur.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
                for i, ev in enumerate(events, start=1):
                    ev = ev.model_copy(update={"seq": last + i})
                    cur.execute(
                        "INSERT INTO outbox (seq, event_id, topic, payload, severity, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            ev.seq,
                            str(ev.event_id),
                            event_topic(ev.site, ev.node),
                            encode(ev),
                            ev.severity.value,
                            time.time(),
                        ),
                    )
                    stored.append(ev)
                cur.execute("UPDATE meta SET value=? WHERE key='last_seq'", (last + len(events),))
                if media_sha256 is not None:
                    cur.execute(
                        "INSERT OR REPLACE INTO media (sha256, path, status, detail, processed_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (media_sha256, media_path, media_status, media_detail, time.time()),
                    )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            if stored:
                self._added.notify_all()
        return stored

    def seen_media(self, sha256: str) -> bool:
        """True when a file with this content was already processed."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM media WHERE sha256=?", (sha256,)).fetchone()
        return row is not None

    def pending(self, *, after_seq: int = 0, limit: int = 100) -> list[OutboxEntry]:
        """The oldest stored events after `after_seq`, in sequence order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, topic, payload FROM outbox"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxEntry(int(r[0]), str(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    def remove(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged events; returns how many rows went."""
        seq_list = [(s,) for s in seqs]
        if not seq_list:
            return 0
        with self._lock:
            cur = self._db.executemany("DELETE FROM outbox WHERE seq=?", seq_list)
            return cur.rowcount

    def depth(self) -> int:
        """Events stored and not yet acknowledged."""
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(n)

    def last_seq(self) -> int:
        """Highest sequence number ever given out."""
        with self._lock:
            (n,) = self._db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
        return int(n)

    def wait_for_new(self, timeout_s: float) -> None:
        """Sleep until an event is added or the timeout passes."""
        with self._added:
            self._added.wait(timeout_s)
