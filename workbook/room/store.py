"""The collector's records, kept in one SQLite file so that stopping and starting the collector loses nothing."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from ..errors import WorkbookError
from .record import Record

_FIELDS = tuple(Record.model_fields)  # seat, lesson, exercise, correct, tries, time
_SCHEMA = """CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    seat TEXT NOT NULL, lesson INTEGER NOT NULL, exercise TEXT NOT NULL,
    correct INTEGER NOT NULL, tries INTEGER NOT NULL, time REAL NOT NULL,
    received REAL NOT NULL  -- the collector's clock, when the record arrived
)"""


class Store:
    """Every record received, in arrival order, in the SQLite file at `path` (created with its folder if new)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection for the collector's life, shared by the web server's threads one at a time: closing the
        # last connection to a WAL file writes it back to disk, 30 ms a record when each call had its own.
        self._db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        self._lock = threading.Lock()
        try:
            with self._lock, self._db:
                self._db.execute("PRAGMA journal_mode=WAL")  # kept in the file
                # In WAL mode a commit survives the collector's process stopping at any moment; only a power cut
                # can lose the last few. FULL would flush the disk on every record.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise WorkbookError(f"{self.path} is not a room's records file ({error}): name a new file, or the one "
                                "an earlier collector kept, with --db.") from None

    def add(self, record: Record) -> None:
        """Keep one record (committed before this returns)."""
        row = record.model_dump()
        with self._lock, self._db:
            self._db.execute(f"INSERT INTO records ({', '.join(_FIELDS)}, received) VALUES "
                             f"({', '.join('?' * len(_FIELDS))}, ?)", [row[f] for f in _FIELDS] + [time.time()])

    def records(self) -> list[Record]:
        """Every record, oldest first. They were checked when they arrived, so they are not checked again: a record
        of an exercise a later workbook renamed still reads back."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_FIELDS)} FROM records ORDER BY id").fetchall()
        return [Record.model_construct(**{**dict(zip(_FIELDS, row)), "correct": bool(row[_FIELDS.index("correct")])})
                for row in rows]
