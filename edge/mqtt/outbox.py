"""The durable outbox: every result is on disk before it is published.

SQLite in WAL mode. A result is inserted (with its ``seq``, camera, payload) before any
sink sees it, and marked delivered only when the broker acknowledged it with a success
reason code. After a reconnect or a restart the undelivered rows are published again in
``seq`` order, which keeps the order per camera. Delivered rows stay for a replay window so
that ``cmd/replay`` can heal a gap that an MES detects in ``seq``.

When the budget (rows) is reached, delivered rows go first; if only undelivered ones are
left the policy decides: ``block`` (default) holds new results back (the inference worker
waits; capture goes on and the newest frame wins), so no result that exists is ever
discarded; ``drop_oldest`` discards the oldest undelivered result and counts it, for sites
that prefer fresh results over complete ones.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge.errors import PublishError
from edge.results import InspectionResult
from edge.service.sinks import SinkBase

Policy = Literal["block", "drop_oldest"]
PRUNE_EVERY_S = 60.0  # delivered rows older than the replay window are forgotten at most this often (and at start)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    camera TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered, seq);
CREATE TABLE IF NOT EXISTS high_water (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Row:
    seq: int
    id: str
    camera: str
    payload: str
    attempts: int
    delivered: float | None


class Outbox:
    """Thread-safe; one connection guarded by a lock (SQLite serialises writers anyway)."""

    def __init__(self, path: Path, max_rows: int = 1_000_000, policy: Policy = "block",
                 keep_delivered_s: float = 24 * 3600, synchronous: Literal["FULL", "NORMAL"] = "NORMAL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(SCHEMA)
            # an outbox written before the high-water mark existed: its rows are the mark (before any pruning)
            self._raise_mark(self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0])
        except sqlite3.Error as err:
            raise PublishError(f"{path}: cannot open the outbox ({err}); check the state dir's disk "
                               "and permissions.") from err
        self.path = path
        self.max_rows = max_rows
        self.policy = policy
        self.keep_delivered_s = keep_delivered_s
        self.dropped = 0
        self.overflow = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)

    # ---- writing ----
    def append(self, rows: list[tuple[int, str, str, str]], stop: threading.Event | None = None) -> None:
        """Insert (seq, id, camera, payload) rows in one transaction, honouring the budget."""
        with self._room:
            while True:
                free = self.max_rows - self._count_locked() - len(rows)
                if free >= 0 or self._make_room_locked(-free):
                    break
                if stop is not None and stop.is_set():
                    self.overflow += len(rows)  # shutting down: over budget beats losing results
                    break
                self._room.wait(0.5)
            now = time.time()
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR IGNORE INTO outbox (seq, id, camera, payload, created) VALUES (?, ?, ?, ?, ?)",
                    [(seq, rid, cam, payload, now) for seq, rid, cam, payload in rows])
                if rows:  # outlives pruning: the station's counter is never set below it (last_seq)
                    self._raise_mark(max(r[0] for r in rows))

    def _raise_mark(self, seq: int | None) -> None:
        """The high-water mark: the highest seq ever stored, never lowered (SQL that SQLite 3.24+ runs)."""
        if seq is not None:
            self._db.execute("INSERT INTO high_water (id, seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE "
                             "SET seq = MAX(seq, excluded.seq)", (int(seq),))

    def _count_locked(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def _make_room_locked(self, needed: int) -> bool:
        """Delete delivered rows first; under drop_oldest, undelivered ones too."""
        with self._db:
            self._db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE delivered "
                             "IS NOT NULL ORDER BY seq LIMIT ?)", (needed,))
        missing = needed - (self.max_rows - self._count_locked())
        if missing <= 0:
            return True
        if self.policy == "drop_oldest":
            with self._db:
                self._db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                                 (missing,))
            self.dropped += missing
            return True
        return False

    # ---- delivery ----
    def pending(self, limit: int, exclude: set[int] | None = None) -> list[Row]:
        """Undelivered rows in seq order (per camera order follows), skipping ``exclude``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, camera, payload, attempts, delivered FROM outbox WHERE delivered IS NULL "
                "ORDER BY seq LIMIT ?", (limit + len(exclude or ()),)).fetchall()
        return [Row(*r) for r in rows if not exclude or r[0] not in exclude][:limit]

    def last_seq(self) -> int:
        """The highest seq this outbox ever stored, pruned rows included (the mark is raised with every append)."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM high_water WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])

    def mark_sent(self, seqs: list[int]) -> None:
        with self._lock, self._db:
            self._db.executemany("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?", [(s,) for s in seqs])

    def mark_delivered(self, seqs: list[int]) -> None:
        now = time.time()
        with self._room, self._db:
            self._db.executemany("UPDATE outbox SET delivered = ? WHERE seq = ? AND delivered IS NULL",
                                 [(now, s) for s in seqs])
            self._room.notify_all()

    def delivered_since(self, first_seq: int, last_seq: int | None, limit: int) -> list[Row]:
        """Rows (delivered or not) from ``first_seq`` on, for cmd/replay."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, camera, payload, attempts, delivered FROM outbox WHERE seq >= ? AND seq <= ? "
                "ORDER BY seq LIMIT ?", (first_seq, last_seq if last_seq is not None else 2**62, limit)).fetchall()
        return [Row(*r) for r in rows]

    def prune(self) -> int:
        """Forget delivered rows older than the replay window."""
        cutoff = time.time() - self.keep_delivered_s
        with self._room, self._db:
            n = self._db.execute("DELETE FROM outbox WHERE delivered IS NOT NULL AND delivered < ?", (cutoff,)).rowcount
            self._room.notify_all()
        return int(n)

    # ---- facts for status and metrics ----
    def stats(self) -> dict[str, float | int | None]:
        """``replay_from``: the oldest seq that cmd/replay can still send (null when the outbox is empty)."""
        with self._lock:
            backlog, oldest = self._db.execute(
                "SELECT COUNT(*), MIN(created) FROM outbox WHERE delivered IS NULL").fetchone()
            total, first = self._db.execute("SELECT COUNT(*), MIN(seq) FROM outbox").fetchone()
        age = None if oldest is None else round(time.time() - oldest, 1)
        return {"backlog": int(backlog), "oldest_undelivered_s": age, "rows": int(total), "max_rows": self.max_rows,
                "dropped": self.dropped, "replay_from": None if first is None else int(first)}

    @property
    def full(self) -> bool:
        with self._lock:
            undelivered = int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE delivered IS NULL").fetchone()[0])
        return undelivered >= self.max_rows

    def close(self) -> None:
        with self._lock:
            self._db.close()


class OutboxSink(SinkBase):
    """The outbox as the publisher's first sink: every result is on disk before any other sink
    (or the broker) sees it. ``wake`` tells the MQTT link that there is something to send."""

    name = "outbox"

    def __init__(self, outbox: Outbox, wake: Callable[[], None], problem: Callable[[str, str | None], None],
                 stop: threading.Event | None = None) -> None:
        self.outbox = outbox
        self._wake = wake
        self._problem = problem
        self._stop = stop
        self._pruned = time.monotonic()

    def write_many(self, results: list[InspectionResult]) -> None:
        if time.monotonic() - self._pruned >= PRUNE_EVERY_S:  # the replay window is kept by time, not by traffic
            self.outbox.prune()
            self._pruned = time.monotonic()
        self.outbox.append([(r.seq, r.id, r.camera, r.to_json()) for r in results], self._stop)
        self._wake()
        stats = self.outbox.stats()
        full = stats["backlog"] >= 0.9 * stats["max_rows"]  # type: ignore[operator]
        self._problem("outbox", f"outbox {stats['backlog']}/{stats['max_rows']} results undelivered "
                      f"(policy {self.outbox.policy})" if full else None)

    def write(self, result: InspectionResult) -> None:
        self.write_many([result])
