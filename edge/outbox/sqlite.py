"""A durable SQLite (WAL) outbox: the node's source of truth for events not yet acknowledged.

Events get their per-node sequence number in the same transaction that stores them, together
with the record that their media file was processed, so a crash either keeps both or neither.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from broker.payloads import EventPayload
from broker.topics import event_topic
from broker.validate import encode

log = logging.getLogger(__name__)

# Columns evidence_uploads gained after its first release: added when an older outbox is opened.
_UPLOAD_COLUMNS = {
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "retry_at": "REAL NOT NULL DEFAULT 0",
    "reason": "TEXT NOT NULL DEFAULT ''",
}

# Acknowledged events are pruned at most this often (a DELETE per PUBACK round would be wasteful).
PRUNE_EVERY_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    severity TEXT NOT NULL,
    created_at REAL NOT NULL,
    acked_at REAL
);
CREATE TABLE IF NOT EXISTS media (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    processed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence_uploads (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    uploaded INTEGER NOT NULL DEFAULT 0,
    restarts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at REAL NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    UNIQUE (event_id, name)
);
CREATE INDEX IF NOT EXISTS ix_evidence_uploads_state ON evidence_uploads (state, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', 0);
"""


# Evidence upload states: pending until central holds the file; done, failed (hash refused twice,
# or unreadable / refused by central on every attempt) and lost (the file was pruned or removed
# before it went) are final. `reason` says why an upload failed, was lost or waits to retry.
UPLOAD_PENDING = "pending"
UPLOAD_DONE = "done"
UPLOAD_FAILED = "failed"
UPLOAD_LOST = "lost"


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    """One explicit write transaction on an autocommit connection (isolation_level=None).

    Without it each row of an executemany is a transaction of its own: a WAL commit (and, with
    synchronous=FULL, an fsync) per row, ~13x the bytes written for 100 rows.
    """
    cur = db.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        yield cur
        cur.execute("COMMIT")
    except BaseException:
        # After SQLITE_FULL (and some I/O errors) SQLite has already rolled back; a second
        # ROLLBACK would raise "no transaction is active" and hide the real error.
        if db.in_transaction:
            cur.execute("ROLLBACK")
        raise


def is_disk_full(exc: BaseException) -> bool:
    """True when `exc` means no space is left: SQLITE_FULL, or ENOSPC/EDQUOT from a write."""
    if isinstance(exc, sqlite3.Error):
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class EvidenceUpload:
    """One evidence file to upload to central under its event."""

    event_id: str
    name: str
    path: str
    sha256: str
    size: int
    id: int = 0
    uploaded: int = 0  # bytes central confirmed last time
    restarts: int = 0  # times the file was sent again from 0 after a refused hash
    attempts: int = 0  # failed attempts (unreadable, refused by central) so far


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One stored event waiting for the broker's acknowledgement."""

    seq: int
    event_id: str
    topic: str
    payload: bytes


class Outbox:
    """Thread-safe durable queue of encoded events, ordered by sequence number."""

    def __init__(self, path: Path, *, retain_acked_s: float = 0.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Keeping acknowledged events a while lets central ask for them again (a resend command)
        # when it lost them after the broker's PUBACK; 0 deletes them at once (least disk).
        self.retain_acked_s = retain_acked_s
        self._pruned_at = 0.0
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # Every commit appends its changed pages whole to the WAL and syncs them: 1 KiB pages
        # write ~20% less to the data disk a day than the default 4 KiB, at the same durability
        # (benchmarks/write_volume.py). Only a new file takes it (so before journal_mode, which
        # writes the header); an existing outbox keeps the page size it was made with.
        self._db.execute("PRAGMA page_size=1024")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged commit survives a power cut
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(outbox)")}
        if "acked_at" not in columns:  # an outbox written by an older version
            self._db.execute("ALTER TABLE outbox ADD COLUMN acked_at REAL")
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS ix_outbox_acked_at ON outbox (acked_at)"
            " WHERE acked_at IS NOT NULL"
        )
        have = {r[1] for r in self._db.execute("PRAGMA table_info(evidence_uploads)")}
        for column, spec in _UPLOAD_COLUMNS.items():
            if column not in have:  # an outbox written by an older version
                self._db.execute(f"ALTER TABLE evidence_uploads ADD COLUMN {column} {spec}")

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
        evidence: Sequence[EvidenceUpload] = (),
    ) -> list[EventPayload]:
        """Store events atomically, numbering them; optionally mark their media as processed and
        queue their evidence files for upload (same transaction: no event without its upload).

        Returns the events as stored (with their sequence numbers).
        """
        stored: list[EventPayload] = []
        with self._added:
            with transaction(self._db) as cur:
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
                cur.executemany(
                    "INSERT OR IGNORE INTO evidence_uploads"
                    " (event_id, name, path, sha256, size, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [(u.event_id, u.name, u.path, u.sha256, u.size, time.time()) for u in evidence],
                )
            if stored:
                self._added.notify_all()
        return stored

    def evidence_pending(
        self, *, limit: int = 100, now: float | None = None
    ) -> list[EvidenceUpload]:
        """Evidence files not uploaded yet and not waiting to retry later, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, event_id, name, path, sha256, size, uploaded, restarts, attempts"
                " FROM evidence_uploads WHERE state=? AND retry_at<=? ORDER BY id LIMIT ?",
                (UPLOAD_PENDING, time.time() if now is None else now, limit),
            ).fetchall()
        return [
            EvidenceUpload(
                id=int(r[0]),
                event_id=str(r[1]),
                name=str(r[2]),
                path=str(r[3]),
                sha256=str(r[4]),
                size=int(r[5]),
                uploaded=int(r[6]),
                restarts=int(r[7]),
                attempts=int(r[8]),
            )
            for r in rows
        ]

    def evidence_progress(self, upload_id: int, *, uploaded: int, restarts: int) -> None:
        """Record how many bytes central confirmed and how often the file was restarted."""
        with self._lock:
            self._db.execute(
                "UPDATE evidence_uploads SET uploaded=?, restarts=? WHERE id=?",
                (uploaded, restarts, upload_id),
            )

    def evidence_finish(self, upload_id: int, state: str, *, reason: str = "") -> None:
        """Give an upload its final state (done, failed or lost) and, when not done, why."""
        with self._lock:
            self._db.execute(
                "UPDATE evidence_uploads SET state=?, reason=? WHERE id=?",
                (state, reason, upload_id),
            )

    def evidence_retry_later(self, upload_id: int, *, reason: str, retry_at: float) -> None:
        """Count a failed attempt of an upload, say why, and leave it until `retry_at`."""
        with self._lock:
            self._db.execute(
                "UPDATE evidence_uploads SET attempts=attempts+1, retry_at=?, reason=? WHERE id=?",
                (retry_at, reason, upload_id),
            )

    def evidence_problems(self) -> list[tuple[str, str, str]]:
        """(name, state, reason) of the uploads that failed, were lost or wait to retry."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, state, reason FROM evidence_uploads WHERE reason != '' ORDER BY id"
            ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def evidence_counts(self) -> dict[str, int]:
        """Evidence uploads by state."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) FROM evidence_uploads GROUP BY state"
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

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
                " WHERE seq > ? AND acked_at IS NULL ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxEntry(int(r[0]), str(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    def remove(self, seqs: Iterable[int]) -> int:
        """Retire acknowledged events (deleted, or kept for retain_acked_s); returns how many."""
        seq_list = [(s,) for s in seqs]
        if not seq_list:
            return 0
        now = time.time()
        with self._lock, transaction(self._db) as cur:  # one commit for the whole round
            if self.retain_acked_s <= 0:
                return cur.executemany("DELETE FROM outbox WHERE seq=?", seq_list).rowcount
            count = cur.executemany(
                "UPDATE outbox SET acked_at=? WHERE seq=? AND acked_at IS NULL",
                [(now, s) for (s,) in seq_list],
            ).rowcount
            if now - self._pruned_at >= PRUNE_EVERY_S:
                self._prune_locked(now)
        return count

    def prune(self) -> int:
        """Delete acknowledged events older than the retention window; returns how many."""
        with self._lock:
            return self._prune_locked(time.time())

    def _prune_locked(self, now: float) -> int:
        self._pruned_at = now
        cur = self._db.execute(
            "DELETE FROM outbox WHERE acked_at IS NOT NULL AND acked_at < ?",
            (now - self.retain_acked_s,),
        )
        return cur.rowcount

    def requeue(self, from_seq: int, to_seq: int) -> list[int]:
        """Mark still-retained events in [from_seq, to_seq] as unsent again; returns their seqs."""
        with self._added:
            rows = self._db.execute(
                "UPDATE outbox SET acked_at=NULL WHERE seq BETWEEN ? AND ? RETURNING seq",
                (from_seq, to_seq),
            ).fetchall()
            seqs = sorted(int(r[0]) for r in rows)
            if seqs:
                self._added.notify_all()
        return seqs

    def depth(self) -> int:
        """Events stored and not yet acknowledged."""
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL").fetchone()
        return int(n)

    def retained(self) -> int:
        """Acknowledged events kept for possible resend requests."""
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE acked_at IS NOT NULL"
            ).fetchone()
        return int(n)

    def last_seq(self) -> int:
        """Highest sequence number ever given out."""
        with self._lock:
            (n,) = self._db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
        return int(n)

    def wake(self) -> None:
        """Wake whoever waits in wait_for_new."""
        with self._added:
            self._added.notify_all()

    def wait_for_new(self, timeout_s: float) -> None:
        """Sleep until an event is added or the timeout passes."""
        with self._added:
            self._added.wait(timeout_s)
