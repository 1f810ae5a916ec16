"""The outbox on its own: order, delivery marks, the replay window, the budget policies."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edge.mqtt.outbox import Outbox
from edge.results import InspectionResult


def _rows(first: int, n: int, camera: str = "cam1") -> list[tuple[int, str, str, str]]:
    return [(s, f"id{s}", camera, f'{{"seq": {s}}}') for s in range(first, first + n)]


def _result(seq: int) -> InspectionResult:
    return InspectionResult.model_validate({
        "id": f"id{seq}", "seq": seq, "ts": "2026-12-05T01:00:00.000Z", "station": "s/l/st", "camera": "cam1",
        "verdict": "ok", "category": "good", "score": 0.9, "scores": {"good": 0.9}, "tile": None,
        "prompt_set": {"name": "p", "version": "v"},
        "model": {"name": "m", "precision": "fp32", "bundle": "b", "backend": "onnxruntime"}, "latency_ms": 1.0})


def test_pending_in_seq_order_and_delivery_survives_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.append(_rows(1, 3, "a") + _rows(4, 3, "b"))
    assert [r.seq for r in box.pending(10)] == [1, 2, 3, 4, 5, 6]
    box.mark_delivered([1, 2, 5])
    assert [r.seq for r in box.pending(10, exclude={3})] == [4, 6]
    box.close()
    again = Outbox(tmp_path / "o.sqlite")  # a restart
    assert [r.seq for r in again.pending(10)] == [3, 4, 6]
    assert again.stats()["backlog"] == 3 and again.last_seq() == 6
    assert [r.seq for r in again.delivered_since(2, 5, 10)] == [2, 3, 4, 5]
    again.append(_rows(3, 1))  # a duplicate seq is ignored, not an error
    assert again.stats()["rows"] == 6


def test_block_policy_waits_for_deliveries(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_rows=10, policy="block")
    box.append(_rows(1, 10))
    done = threading.Event()
    threading.Thread(target=lambda: (box.append(_rows(11, 2)), done.set()), daemon=True).start()
    assert not done.wait(0.5)  # full of undelivered results: the writer waits
    box.mark_delivered([1, 2])
    assert done.wait(5)
    assert [r.seq for r in box.pending(20)] == list(range(3, 13)) and box.dropped == 0


def test_drop_oldest_policy_counts_what_it_drops(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_rows=10, policy="drop_oldest")
    box.append(_rows(1, 10))
    box.mark_delivered([1])
    box.append(_rows(11, 3))
    assert box.dropped == 2  # the delivered row went first, then the two oldest undelivered
    assert [r.seq for r in box.pending(20)] == list(range(4, 14))


def test_prune_keeps_the_replay_window(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", keep_delivered_s=0)
    box.append(_rows(1, 3))
    box.mark_delivered([1, 2])
    assert box.prune() == 2 and box.stats()["rows"] == 1
    keep = Outbox(tmp_path / "k.sqlite", keep_delivered_s=3600)
    keep.append(_rows(1, 3))
    keep.mark_delivered([1, 2])
    assert keep.prune() == 0


def test_stopping_while_full_goes_over_budget_rather_than_losing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_rows=10)
    box.append(_rows(1, 10))
    stop = threading.Event()
    stop.set()
    box.append(_rows(11, 2), stop)
    assert [r.seq for r in box.pending(20)][-2:] == [11, 12] and box.overflow == 2


def test_the_highest_seq_outlives_pruning_and_stats_say_what_replay_can_send(tmp_path: Path) -> None:
    """The station's counter is set from last_seq at start: it must not fall when old rows are pruned."""
    box = Outbox(tmp_path / "o.sqlite", keep_delivered_s=0)
    assert box.last_seq() == 0 and box.stats()["replay_from"] is None
    box.append(_rows(5, 3))
    assert box.stats()["replay_from"] == 5
    box.mark_delivered([5, 6, 7])
    assert box.prune() == 3 and box.stats()["rows"] == 0
    box.close()
    again = Outbox(tmp_path / "o.sqlite")
    assert again.last_seq() == 7 and again.stats()["replay_from"] is None


def test_the_sink_prunes_by_time_not_only_when_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """keep_delivered_s is a time window: delivered rows past it go while results flow, not only at the budget."""
    from edge.mqtt import outbox as module

    box = Outbox(tmp_path / "o.sqlite", keep_delivered_s=0)
    sink = module.OutboxSink(box, wake=lambda: None, problem=lambda *_: None)
    box.append(_rows(1, 3))
    box.mark_delivered([1, 2, 3])
    monkeypatch.setattr(module, "PRUNE_EVERY_S", 0.0)
    sink.write_many([_result(4)])
    assert [r.seq for r in box.delivered_since(0, None, 10)] == [4]


def test_an_outbox_from_before_the_high_water_mark_takes_its_rows_as_the_mark(tmp_path: Path) -> None:
    """Upgrading: an outbox written by an earlier build has no high-water mark; pruning its old delivered rows at
    the first start must not lower last_seq (the counter starts above it)."""
    import sqlite3

    path = tmp_path / "o.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, camera TEXT NOT NULL, "
                         "payload TEXT NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
                         "delivered REAL);")
        db.executemany("INSERT INTO outbox VALUES (?, ?, 'cam1', '{}', 0, 1, 1)", [(s, f"id{s}") for s in (1, 2, 500)])
    box = Outbox(path, keep_delivered_s=3600)
    assert box.prune() == 3 and box.stats()["rows"] == 0
    assert box.last_seq() == 500
