"""Result sinks: each gets the very same payload (the durable outbox for MQTT, a JSON-lines file, stdout).

The publisher hands every sink each numbered batch with ``write_many``, in order, the outbox
first. A sink that raises makes the publisher retry the same batch (after its supervisor's
backoff) from that sink on: sinks before it are not written twice.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Protocol, TextIO

from edge.errors import PublishError
from edge.results import InspectionResult


class Sink(Protocol):
    name: str

    def write(self, result: InspectionResult) -> None: ...

    def write_many(self, results: list[InspectionResult]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class SinkBase:
    """``write_many`` as one ``write`` per result; sinks with a cheaper batch path override it."""

    name = "sink"

    def write(self, result: InspectionResult) -> None:
        raise NotImplementedError

    def write_many(self, results: list[InspectionResult]) -> None:
        for result in results:
            self.write(result)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.flush()


class JsonLinesSink(SinkBase):
    """Appends one JSON object per line; flushed per result, fsynced on flush/close."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fh = path.open("a", encoding="utf-8")
        except OSError as err:
            raise PublishError(f"{path}: cannot open the results file ({err.strerror}); "
                               "check the path and permissions.") from err
        self.name = f"jsonl:{path}"

    def write(self, result: InspectionResult) -> None:
        self.write_many([result])

    def write_many(self, results: list[InspectionResult]) -> None:
        self._fh.write("".join(r.to_json() + "\n" for r in results))
        self._fh.flush()

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()


class StdoutSink(SinkBase):
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self.name = "stdout"

    def write(self, result: InspectionResult) -> None:
        print(result.to_json(), file=self._stream, flush=True)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self.flush()


class CallbackSink(SinkBase):
    """Hands results to a function (the demo's live table, tests)."""

    def __init__(self, fn, name: str = "callback") -> None:  # type: ignore[no-untyped-def]
        self._fn = fn
        self.name = name

    def write(self, result: InspectionResult) -> None:
        self._fn(result)
