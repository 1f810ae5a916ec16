"""The publisher: numbered, durable results handed to every sink, never one lost.

Inference puts results on a bounded queue (and waits when it is full). The publisher takes
what is queued as one batch, numbers it (``seq``, one durable transaction), saves NG
evidence, and hands it to every sink in order, the durable outbox first. It holds the batch
until every sink took it: an error (a full disk, a locked database) is raised to its
supervisor, which reports it and restarts the loop, and the loop goes on with the same
batch from the sink that failed. So a numbered result is never dropped, and inference waits
until the sinks recover.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from edge.config import ServiceConfig
from edge.results import InspectionResult
from edge.service.control import Observers
from edge.service.evidence import EvidenceStore
from edge.service.sequence import SequenceCounter
from edge.service.sinks import Sink
from edge.service.status import StatusBoard

log = logging.getLogger("edge_inspect.publisher")

RECENT_FRAMES = 64  # raw frames kept by result id, for teaching good parts from the recent list


@dataclass
class Tally:
    """Verdict counts (metrics) and publishing time (the pipeline benchmark)."""

    seconds: float = 0.0
    verdicts: dict[str, int] = field(default_factory=dict)
    by_category: dict[tuple[str, str], int] = field(default_factory=dict)  # (verdict, category) -> count


@dataclass
class HeldBatch:
    """A batch the publisher is working on; kept across a failure so that nothing is lost."""

    items: list[tuple[InspectionResult, np.ndarray, np.ndarray | None]]  # result, frame, anomaly heat map
    finished: bool
    numbered: bool = False
    accounted: bool = False
    sinks_done: set[int] = field(default_factory=set)


class Publisher:
    def __init__(self, config: ServiceConfig, seq: SequenceCounter, evidence: EvidenceStore, sinks: list[Sink],
                 status: StatusBoard, observers: Observers, stop: threading.Event) -> None:
        self.config = config
        self.seq = seq
        self.evidence = evidence
        self.sinks = sinks
        self.status = status
        self.observers = observers
        self.tally = Tally()
        self.done = threading.Event()  # the end marker was published: every result is out
        self._stop = stop
        self._results: queue.Queue[tuple[InspectionResult, np.ndarray, np.ndarray | None] | None] = queue.Queue(
            maxsize=config.results.queue)
        self._held: HeldBatch | None = None
        self._inference_done = False
        self._recent: deque[InspectionResult] = deque(maxlen=500)
        self._recent_defects: deque[tuple[InspectionResult, np.ndarray]] = deque(maxlen=8)
        self._recent_frames: OrderedDict[str, np.ndarray] = OrderedDict()  # result id -> frame (teaching by id)
        self._recent_lock = threading.Lock()

    def end(self) -> None:
        """No more results will come (inference ended)."""
        self._inference_done = True
        self._results.put(None)

    def put(self, result: InspectionResult, image: np.ndarray, heat: np.ndarray | None = None) -> None:
        """Never drop a result: wait for room, however long the sinks take (until stop)."""
        waited = False
        while True:
            try:
                self._results.put((result, image, heat), timeout=0.5)
                break
            except queue.Full:
                waited = True
                self.status.problem("results", "result queue full: the sinks are slower than inference "
                                    "(see the publisher's problem, if any)")
                if self._stop.is_set():
                    log.warning("stopping with a full result queue: result of %s at %s not numbered",
                                result.camera, result.ts)
                    return
        if waited:
            self.status.problem("results", None)

    def _next_batch(self, limit: int = 256) -> HeldBatch:
        """Everything queued (up to ``limit``): one outbox transaction per batch."""
        while True:
            try:
                item = self._results.get(timeout=0.5)
                break
            except queue.Empty:
                if self._stop.is_set() and self._inference_done:
                    return HeldBatch([], True)
        if item is None:
            return HeldBatch([], True)
        items = [item]
        while len(items) < limit:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return HeldBatch(items, True)
            items.append(item)
        return HeldBatch(items, False)

    def loop(self) -> None:
        """Restartable: a batch that failed part-way is resumed where it stopped (see HeldBatch)."""
        while True:
            if self._held is None:
                self._held = self._next_batch()
            held = self._held
            t0 = time.perf_counter()
            self._publish(held)
            self.tally.seconds += time.perf_counter() - t0
            self._held = None
            if held.finished:
                break
        self.done.set()

    def _publish(self, held: HeldBatch) -> None:
        if not held.items:
            return
        if not held.numbered:
            seqs = self.seq.take(len(held.items))  # one durable transaction; from here on a loss is a gap
            held.items = [(InspectionResult.model_validate({**r.model_dump(by_alias=True), "seq": s}), image, heat)
                          for (r, image, heat), s in zip(held.items, seqs)]
            held.numbered = True
        if not held.accounted:
            self._evidence_and_counts(held.items)
            held.accounted = True
        results = [r for r, _, _ in held.items]
        for i, sink in enumerate(self.sinks):  # the outbox first: durable before anyone else sees them
            if i not in held.sinks_done:
                sink.write_many(results)
                held.sinks_done.add(i)
        with self._recent_lock:
            self._recent.extend(results)
            for result, image, _ in held.items:
                self._recent_frames[result.id] = image
            while len(self._recent_frames) > RECENT_FRAMES:
                self._recent_frames.popitem(last=False)
        self.observers.notify("on_result", results)

    def _evidence_and_counts(self, items: list[tuple[InspectionResult, np.ndarray, np.ndarray | None]]) -> None:
        ok_every = self.config.evidence.ok_every
        for result, image, heat in items:
            self.tally.verdicts[result.verdict] = self.tally.verdicts.get(result.verdict, 0) + 1
            key = (result.verdict, result.category)
            self.tally.by_category[key] = self.tally.by_category.get(key, 0) + 1
            if result.verdict != "ok" or (ok_every and result.seq % ok_every == 0):
                result.snapshot = self._save_evidence(image, result, heat)
            if result.verdict != "ok":
                with self._recent_lock:
                    self._recent_defects.append((result, image))

    def _save_evidence(self, image: np.ndarray, result: InspectionResult, heat: np.ndarray | None) -> str | None:
        """Evidence is worth keeping, but never worth a result: a failed save leaves snapshot null."""
        try:
            ref = self.evidence.save(image, result, heat)
        except (OSError, ValueError) as err:
            self.status.problem("evidence", f"cannot save evidence in {self.evidence.root}: {err}; results go on "
                                "without snapshots")
            return None
        self.status.problem("evidence", None)
        return ref

    def held_numbered(self) -> list[int]:
        """Seqs of a numbered batch not yet taken by every sink (reported if the process must stop)."""
        held = self._held
        return [r.seq for r, _, _ in held.items] if held is not None and held.numbered else []

    def recent(self) -> list[InspectionResult]:
        """The last results, oldest first (a copy: the publisher keeps appending)."""
        with self._recent_lock:
            return list(self._recent)

    def recent_defects(self) -> list[tuple[InspectionResult, np.ndarray]]:
        with self._recent_lock:
            return list(self._recent_defects)

    def recent_frame(self, result_id: str) -> np.ndarray | None:
        """The frame of one of the last results (an operator teaching good parts by picking them)."""
        with self._recent_lock:
            return self._recent_frames.get(result_id)

    @property
    def queue_depth(self) -> int:
        return self._results.qsize()
