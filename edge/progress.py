"""Progress for long work (export, calibration, engine builds), on stderr.

Plain numbered steps with timings: they read well in a terminal, in journald and in CI
logs alike, which a redrawing bar does not.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Steps:
    """Prints ``[k/n] what ... done in 1.2 s`` for each step of a known-length job."""

    def __init__(self, total: int, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.quiet = quiet

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.done += 1
        self._print(f"[{self.done}/{self.total}] {what} ...")
        start = time.perf_counter()
        yield
        self._print(f"[{self.done}/{self.total}] {what}: done in {time.perf_counter() - start:.1f} s")

    def info(self, message: str) -> None:
        self._print(f"      {message}")

    def _print(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.stream, flush=True)
