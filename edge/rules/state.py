"""RuleState: the rules' small persistent memory (counts, alarms, background, deaths)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from surveillance.geometry import NormBox

log = logging.getLogger(__name__)

DeathRow = dict[str, str | float | None]  # one suspected death, columns of the deaths table

STATE_FILE = "rules.db"
AlarmState = Literal["normal", "high", "low"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cameras (camera TEXT PRIMARY KEY, first_seen TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS background (
    id INTEGER PRIMARY KEY AUTOINCREMENT, camera TEXT NOT NULL,
    x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL, added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS active_days (
    camera TEXT NOT NULL, day TEXT NOT NULL, PRIMARY KEY (camera, day)
);
CREATE TABLE IF NOT EXISTS daily_counts (
    camera TEXT NOT NULL, day TEXT NOT NULL, key TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (camera, day, key)
);
CREATE TABLE IF NOT EXISTS count_alarms (
    camera TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, day TEXT NOT NULL,
    PRIMARY KEY (camera, key)
);
CREATE TABLE IF NOT EXISTS deaths (
    ref TEXT PRIMARY KEY, t TEXT NOT NULL, seen_ts REAL NOT NULL, last_seen TEXT,
    camera TEXT NOT NULL, node TEXT NOT NULL, scientific_name TEXT, chinese_name TEXT NOT NULL,
    english_name TEXT NOT NULL, risk_group TEXT, protection_level TEXT, rank TEXT NOT NULL,
    source TEXT NOT NULL, x REAL, y REAL, w REAL, h REAL
);
CREATE TABLE IF NOT EXISTS raised_clusters (
    key TEXT PRIMARY KEY, last TEXT NOT NULL, ts REAL NOT NULL
);
"""
DEATH_COLUMNS = (
    "ref",
    "t",
    "last_seen",
    "camera",
    "node",
    "scientific_name",
    "chinese_name",
    "english_name",
    "risk_group",
    "protection_level",
    "rank",
    "source",
    "x",
    "y",
    "w",
    "h",
)


def _box(row: tuple[object, ...]) -> NormBox:
    x, y, w, h = (float(str(v)) for v in row)
    return x, y, w, h


class RuleState:
    """SQLite store in the node's data_dir (or in memory for a one-off scan and tests)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        target = str(path) if path is not None else ":memory:"
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._background: dict[str, list[NormBox]] = {}  # cache: read for every sighting

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> RuleState:
        """The node's state file; in memory (with a warning) when data_dir does not exist."""
        if not data_dir.is_dir():
            log.warning("data_dir %s missing: rule state kept in memory only", data_dir)
            return cls()
        return cls(data_dir / STATE_FILE)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _exec(self, sql: str, *args: object) -> None:
        with self._lock:
            self._db.execute(sql, args)

    # -- scene ----------------------------------------------------------------------------------
    def first_seen(self, camera: str) -> datetime | None:
        """Capture time of the first sighting of a camera ever processed."""
        rows = self._rows("SELECT first_seen FROM cameras WHERE camera = ?", camera)
        return datetime.fromisoformat(str(rows[0][0])) if rows else None

    def set_first_seen(self, camera: str, t: datetime) -> None:
        """Remember the first sighting of a camera (kept if already known)."""
        self._exec(
            "INSERT OR IGNORE INTO cameras (camera, first_seen) VALUES (?, ?)",
            camera,
            t.isoformat(),
        )

    def mark_background(self, camera: str, box: NormBox, at: datetime | None = None) -> None:
        """A person marked this box (x, y, w, h normalised) as background: masked from now on."""
        x, y, w, h = box
        when = at.isoformat() if at is not None else ""
        self._exec(
            "INSERT INTO background (camera, x, y, w, h, added_at) VALUES (?, ?, ?, ?, ?, ?)",
            camera,
            x,
            y,
            w,
            h,
            when,
        )
        self._background.pop(camera, None)
        log.info("camera %s: box %s marked as background", camera, box)

    def background(self, camera: str) -> list[NormBox]:
        """Boxes marked as background on a camera."""
        cached = self._background.get(camera)
        if cached is None:
            rows = self._rows(
                "SELECT x, y, w, h FROM background WHERE camera = ? ORDER BY id", camera
            )
            cached = [
                (float(str(x)), float(str(y)), float(str(w)), float(str(h))) for x, y, w, h in rows
            ]
            self._background[camera] = cached
        return list(cached)

    # -- daily counts ---------------------------------------------------------------------------
    def record_counts(self, camera: str, day: date, counts: dict[str, int]) -> None:
        """Mark the camera active on `day` and keep each key's highest count per image (MaxN)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO active_days (camera, day) VALUES (?, ?)",
                (camera, day.isoformat()),
            )
            for key, n in counts.items():
                self._db.execute(
                    "INSERT INTO daily_counts (camera, day, key, count) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (camera, day, key) "
                    "DO UPDATE SET count = max(count, excluded.count)",
                    (camera, day.isoformat(), key, n),
                )

    def active_days(self, camera: str, before: date, limit: int) -> list[date]:
        """The camera's latest active days before `before`, newest first."""
        rows = self._rows(
            "SELECT day FROM active_days WHERE camera = ? AND day < ? ORDER BY day DESC LIMIT ?",
            camera,
            before.isoformat(),
            limit,
        )
        return [date.fromisoformat(str(r[0])) for r in rows]

    def day_counts(self, camera: str, day: date) -> dict[str, int]:
        """Counts of every key on one day."""
        rows = self._rows(
            "SELECT key, count FROM daily_counts WHERE camera = ? AND day = ?",
            camera,
            day.isoformat(),
        )
        return {str(k): int(str(n)) for k, n in rows}

    def history(self, camera: str, key: str, days: list[date]) -> list[int]:
        """Counts of one key on the given active days (0 where none was recorded)."""
        if not days:
            return []
        marks = ",".join("?" * len(days))
        rows = self._rows(
            "SELECT day, count FROM daily_counts "
            f"WHERE camera = ? AND key = ? AND day IN ({marks})",
            camera,
            key,
            *(d.isoformat() for d in days),
        )
        found = {str(d): int(str(n)) for d, n in rows}
        return [found.get(d.isoformat(), 0) for d in days]

    def keys(self, camera: str, days: list[date]) -> set[str]:
        """Every key counted on the given days."""
        if not days:
            return set()
        marks = ",".join("?" * len(days))
        rows = self._rows(
            f"SELECT DISTINCT key FROM daily_counts WHERE camera = ? AND day IN ({marks})",
            camera,
            *(d.isoformat() for d in days),
        )
        return {str(r[0]) for r in rows}

    def last_active_day(self, camera: str) -> date | None:
        """The newest day the camera delivered anything."""
        rows = self._rows("SELECT max(day) FROM active_days WHERE camera = ?", camera)
        return date.fromisoformat(str(rows[0][0])) if rows and rows[0][0] is not None else None

    # -- alarms (hysteresis) --------------------------------------------------------------------
    def alarm(self, camera: str, key: str) -> tuple[AlarmState, date | None]:
        """The alarm state of a count and the day it was set."""
        rows = self._rows(
            "SELECT state, day FROM count_alarms WHERE camera = ? AND key = ?", camera, key
        )
        if not rows:
            return "normal", None
        state = str(rows[0][0])
        st: AlarmState = "high" if state == "high" else "low" if state == "low" else "normal"
        return st, date.fromisoformat(str(rows[0][1]))

    def set_alarm(self, camera: str, key: str, state: AlarmState, day: date) -> None:
        """Set the alarm state of a count."""
        self._exec(
            "INSERT INTO count_alarms (camera, key, state, day) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (camera, key) DO UPDATE SET state = excluded.state, day = excluded.day",
            camera,
            key,
            state,
            day.isoformat(),
        )

    # -- suspected deaths and the clusters raised on them (mortality rules) ---------------------
    def save_death(self, row: DeathRow, seen: datetime) -> None:
        """Insert or update one suspected death; `seen` (its last sighting) decides its pruning."""
        marks = ",".join("?" * (len(DEATH_COLUMNS) + 1))
        self._exec(
            f"INSERT OR REPLACE INTO deaths ({', '.join(DEATH_COLUMNS)}, seen_ts) VALUES ({marks})",
            *(row.get(c) for c in DEATH_COLUMNS),
            seen.timestamp(),
        )

    def deaths(self) -> list[DeathRow]:
        """Every remembered death, oldest first."""
        rows = self._rows(f"SELECT {', '.join(DEATH_COLUMNS)} FROM deaths ORDER BY t, ref")
        return [dict(zip(DEATH_COLUMNS, (_cell(v) for v in r), strict=True)) for r in rows]

    def forget_deaths(self, before: datetime) -> None:
        """Forget deaths last seen before `before`."""
        self._exec("DELETE FROM deaths WHERE seen_ts < ?", before.timestamp())

    def raised_clusters(self) -> dict[str, datetime]:
        """Grouping -> capture time of the last death already reported in a cluster."""
        rows = self._rows("SELECT key, last FROM raised_clusters")
        return {str(k): datetime.fromisoformat(str(t)) for k, t in rows}

    def set_raised(self, key: str, last: datetime) -> None:
        """Remember that a grouping's deaths up to `last` were reported in a cluster."""
        self._exec(
            "INSERT OR REPLACE INTO raised_clusters (key, last, ts) VALUES (?, ?, ?)",
            key,
            last.isoformat(),
            last.timestamp(),
        )

    def forget_raised(self, before: datetime) -> None:
        """Forget groupings whose last reported death is before `before`."""
        self._exec("DELETE FROM raised_clusters WHERE ts < ?", before.timestamp())


def _cell(v: object) -> str | float | None:
    return v if v is None or isinstance(v, str | float) else float(str(v))
