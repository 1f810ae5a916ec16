"""One error boundary for every thread the station starts: no thread dies silently.

``supervised(name, loop, status)`` runs ``loop()`` on a daemon thread. When the loop
returns, the thread ends normally. When it raises, the traceback is logged once, the
problem is put on the status board (so ``/healthz``, the MQTT status and the watchdog see
it within one scrape), and then:

* ``restart=True``: the loop is started again after a backoff (0.5 s doubling to 30 s);
  the problem is cleared once the loop has run for ``healthy_after_s`` without failing.
  For loops whose state survives a restart (cameras, inference, the publisher, which keeps
  its batch, the command and watcher loops).
* ``restart=False``: the thread calls ``on_fatal`` (the station stops and exits non-zero, so
  systemd restarts the process). For loops that cannot be restarted in place.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("edge_inspect.supervise")

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0


class ProblemSink(Protocol):
    def problem(self, component: str, reason: str | None) -> None: ...


class Supervised:
    """A supervised thread; ``failures`` counts the loop's exceptions."""

    def __init__(self, name: str, loop: Callable[[], None], status: ProblemSink, stop: threading.Event,
                 restart: bool = True, on_fatal: Callable[[str], None] | None = None,
                 healthy_after_s: float = 5.0) -> None:
        self.name = name
        self.failures = 0
        self._loop = loop
        self._status = status
        self._stop = stop
        self._restart = restart
        self._on_fatal = on_fatal
        self._healthy_after_s = healthy_after_s
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def component(self) -> str:
        return f"thread {self.name}"

    def start(self) -> Supervised:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff = BACKOFF_START_S
        while True:
            started = time.monotonic()
            try:
                self._loop()
                self._status.problem(self.component, None)
                return
            except Exception as err:  # the boundary: every unexpected error is reported, never swallowed
                self.failures += 1
                reason = f"{type(err).__name__}: {err}".strip()[:300]
                if self._restart:
                    reason += f" (restarting in {backoff:g} s)"
                log.error("thread %s failed: %s\n%s", self.name, reason, traceback.format_exc().rstrip())
                self._status.problem(self.component, reason)
            if not self._restart or self._stop.is_set():
                if not self._restart and self._on_fatal is not None:
                    self._on_fatal(f"thread {self.name} failed and cannot be restarted")
                return
            if time.monotonic() - started > self._healthy_after_s:
                backoff = BACKOFF_START_S  # it had recovered before failing again
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            self._clear_when_healthy()

    def _clear_when_healthy(self) -> None:
        """Clear the problem once the restarted loop has run a while (from a helper timer)."""
        failures = self.failures

        def clear() -> None:
            if self.failures == failures and self._thread.is_alive():
                self._status.problem(self.component, None)

        timer = threading.Timer(self._healthy_after_s, clear)
        timer.daemon = True
        timer.start()


def supervised(name: str, loop: Callable[[], None], status: ProblemSink, stop: threading.Event,
               restart: bool = True, on_fatal: Callable[[str], None] | None = None,
               healthy_after_s: float = 5.0) -> Supervised:
    """Start ``loop`` on a supervised thread (see the module docstring)."""
    return Supervised(name, loop, status, stop, restart, on_fatal, healthy_after_s).start()
