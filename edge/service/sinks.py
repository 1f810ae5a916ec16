"""Result sinks: each gets the very same payload (JSON-lines file, stdout; MQTT later)."""

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

    def flush(self) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
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
        self._fh.write(result.to_json() + "\n")
        self._fh.flush()

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()


class StdoutSink:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self.name = "stdout"

    def write(self, result: InspectionResult) -> None:
        print(result.to_json(), file=self._stream, flush=True)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self.flush()


class CallbackSink:
    """Hands results to a function (the demo's live table, tests)."""

    def __init__(self, fn, name: str = "callback") -> None:  # type: ignore[no-untyped-def]
        self._fn = fn
        self.name = name

    def write(self, result: InspectionResult) -> None:
        self._fn(result)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
