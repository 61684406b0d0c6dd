"""The collector's records, kept in one SQLite file so that stopping and starting the collector loses nothing."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
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
        try:
            with closing(self._connect()) as db, db:
                db.execute(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise WorkbookError(f"{self.path} is not a room's records file ({error}): name a new file, or the one "
                                "an earlier collector kept, with --db.") from None

    def _connect(self) -> sqlite3.Connection:
        # One short-lived connection per call: the web server answers from several threads.
        return sqlite3.connect(self.path, timeout=10)

    def add(self, record: Record) -> None:
        """Keep one record (committed before this returns)."""
        row = record.model_dump()
        with closing(self._connect()) as db, db:
            db.execute(f"INSERT INTO records ({', '.join(_FIELDS)}, received) VALUES "
                       f"({', '.join('?' * len(_FIELDS))}, ?)", [row[f] for f in _FIELDS] + [time.time()])

    def records(self) -> list[Record]:
        """Every record, oldest first. They were checked when they arrived, so they are not checked again: a record
        of an exercise a later workbook renamed still reads back."""
        with closing(self._connect()) as db:
            rows = db.execute(f"SELECT {', '.join(_FIELDS)} FROM records ORDER BY id").fetchall()
        return [Record.model_construct(**{**dict(zip(_FIELDS, row)), "correct": bool(row[_FIELDS.index("correct")])})
                for row in rows]
