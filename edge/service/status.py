"""What the service says about itself: online, or degraded with the reasons.

One place collects component health (cameras, encoder, prompt set, sinks); the CLI logs
its changes, the MQTT publisher will send it retained on ``.../status``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("edge_inspect.status")


class StatusBoard:
    def __init__(self) -> None:
        self._problems: dict[str, str] = {}
        self._facts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.listeners: list[Callable[[str], object]] = []  # called with summary() on every change

    def problem(self, component: str, reason: str | None) -> None:
        """Set (reason) or clear (None) a component's problem; log only changes."""
        with self._lock:
            before = self._problems.get(component)
            if reason is None:
                self._problems.pop(component, None)
            else:
                self._problems[component] = reason
        if before != reason:
            if reason is None:
                log.info("%s: recovered", component)
            else:
                log.warning("%s: %s", component, reason)
            for listener in self.listeners:
                listener(self.summary())

    def summary(self) -> str:
        """One line: 'online' or 'degraded: camera cam1: reconnecting; mqtt: ...' (systemd's STATUS=)."""
        snap = self.snapshot()
        return snap["state"] if not snap["reasons"] else f"{snap['state']}: {'; '.join(snap['reasons'])}"

    def fact(self, key: str, value: Any) -> None:
        with self._lock:
            self._facts[key] = value

    @property
    def state(self) -> str:
        with self._lock:
            return "degraded" if self._problems else "online"

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"state": "degraded" if self._problems else "online",
                    "reasons": [f"{k}: {v}" for k, v in sorted(self._problems.items())],
                    **self._facts}
