"""The per-station ``seq``: +1 per result, never reused, survives restarts.

Stored in SQLite (WAL, synchronous=FULL) under the state dir. The publisher thread numbers
each batch of results in one transaction before any of them is written anywhere, so a
restart, even after a power cut, continues after the last number used. A gap in ``seq``
means results that were being inspected when the process died, never a reused number.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class SequenceCounter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seq (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER)")
        self._db.execute("INSERT OR IGNORE INTO seq (id, last) VALUES (1, 0)")
        self._lock = threading.Lock()

    def take(self, count: int) -> list[int]:
        """``count`` consecutive numbers in one durable transaction."""
        with self._lock:
            row = self._db.execute("UPDATE seq SET last = last + ? WHERE id = 1 RETURNING last", (count,)).fetchone()
            last = int(row[0])
            return list(range(last - count + 1, last + 1))

    def advance_to(self, floor: int) -> int:
        """Never below ``floor`` (the outbox's highest seq): a sequence file lost or restored from an older
        backup would otherwise number new results with seqs the MES already has. Returns how far it moved."""
        with self._lock:
            before = int(self._db.execute("SELECT last FROM seq WHERE id = 1").fetchone()[0])
            if floor > before:
                self._db.execute("UPDATE seq SET last = ? WHERE id = 1", (floor,))
            return max(0, floor - before)

    @property
    def last(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT last FROM seq WHERE id = 1").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
