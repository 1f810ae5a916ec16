"""sd_notify without a dependency: one datagram to ``$NOTIFY_SOCKET`` per message.

READY=1 is sent once the service can inspect (engine loaded and self-tested, cameras
opened); STATUS= lines on every state change; WATCHDOG=1 only while the inference loop
makes progress, so a hung encoder stops the pings and systemd restarts the unit
(``WatchdogSec=``); STOPPING=1 on shutdown. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("edge_inspect.systemd")


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.address: str | None = None
        if address:
            # "@name" is Linux's abstract namespace: a leading NUL byte
            self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; False (logged once) if it cannot."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, self.address)
                return True
            except OSError as err:
                log.warning("sd_notify to %r failed: %s", self.address, err)
                return False

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str = "draining queues") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval() -> float | None:
    """Seconds between pings (half of WatchdogSec), or None when systemd did not ask for them."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 1e6 / 2)
    except ValueError:
        return None


class Watchdog:
    """Pings systemd while ``progressing()`` says the pipeline is alive; stops pinging when it is not."""

    def __init__(self, notifier: Notifier, interval: float, progressing: Callable[[], bool]) -> None:
        self.notifier = notifier
        self.interval = interval
        self.progressing = progressing
        self.pings = 0
        self.withheld = 0
        self._stop = threading.Event()
        self._thread: Any = None

    def start(self, spawn: Callable[[str, Callable[[], None]], Any]) -> Watchdog:
        """Ping from a thread that ``spawn(name, loop)`` starts under the station's error boundary (``run`` passes
        ``station.supervise``): a failing ping loop is reported and restarted, never silently dead."""
        self._thread = spawn("watchdog", self.loop)
        return self

    def loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.progressing():
                if self.notifier.watchdog():
                    self.pings += 1
            else:
                self.withheld += 1
                if self.withheld == 1 or self.withheld % 10 == 0:
                    log.error("inference loop has made no progress: watchdog pings withheld (%d)", self.withheld)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
