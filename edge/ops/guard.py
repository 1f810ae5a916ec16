"""Two guards in front of the operator page: Host/Origin checks and login throttling.

* DNS rebinding: a web page on another name that resolves to the station's address could
  drive the open loopback page from an operator's browser. Every request's ``Host`` must be a
  name the page is served under (loopback names, the bound address, ``ops.http.hostnames``),
  and a change (POST) that carries an ``Origin`` must come from that same host.
* Password guessing: failed logins are counted per client address and per user name; past
  :data:`FREE_FAILURES`, each further attempt waits twice as long (up to 5 minutes), answered
  429. Hashing (PBKDF2, deliberately slow) runs one at a time, so a crowd of guessers takes at
  most one core from inspection, and an unknown name costs the same hash as a known one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.config import LOOPBACK, OpsConfig

FREE_FAILURES = 5
MAX_WAIT_S = 300.0
FORGET_S = 900.0  # failures older than this are forgotten


def _host_name(value: str) -> str:
    """'Example.com:9108' -> 'example.com'; '[::1]:9108' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostGuard:
    def __init__(self, cfg: OpsConfig) -> None:
        names = {*LOOPBACK, *(n.lower() for n in cfg.http.hostnames)}
        bound = cfg.http.host
        self.any_host = bound in ("0.0.0.0", "::") and not cfg.http.hostnames  # logins guard it; say so in docs
        if bound not in ("0.0.0.0", "::"):
            names.add(bound.lower())
        self.names = names

    def allows(self, host: str, origin: str | None, method: str) -> str | None:
        """None when the request may pass, else why not."""
        name = _host_name(host)
        if not self.any_host and name not in self.names:
            return f"host {name!r} is not a name of this page (ops.http.hostnames)"
        if origin and method not in ("GET", "HEAD", "OPTIONS"):
            origin_host = urlsplit(origin).netloc.lower()
            if origin_host != host.strip().lower():
                return f"origin {origin!r} is not this page"
        return None

    def middleware(self) -> Middleware:
        return Middleware(_HostMiddleware, guard=self)


class _HostMiddleware:
    def __init__(self, app: ASGIApp, guard: HostGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        why = self.guard.allows(headers.get("host", ""), headers.get("origin"), scope.get("method", "GET"))
        if why is not None:
            await JSONResponse({"error": why}, status_code=421 if "host" in why else 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, last failure)
        self._lock = threading.Lock()
        self._hashing = asyncio.Semaphore(1)

    def _wait_for(self, key: str, now: float) -> float:
        count, last = self._failures.get(key, (0, 0.0))
        if now - last > FORGET_S:
            return 0.0
        if count < FREE_FAILURES:
            return 0.0
        return max(0.0, last + min(MAX_WAIT_S, 2.0 ** (count - FREE_FAILURES)) - now)

    def wait_s(self, client: str, name: str) -> float:
        """Seconds before this client, or anyone, may try this name again (0: now)."""
        now = self._clock()
        with self._lock:
            return max(self._wait_for(f"client:{client}", now), self._wait_for(f"name:{name}", now))

    def record(self, client: str, name: str, ok: bool) -> None:
        now = self._clock()
        with self._lock:
            for key in (f"client:{client}", f"name:{name}"):
                if ok:
                    self._failures.pop(key, None)
                    continue
                count, last = self._failures.get(key, (0, 0.0))
                self._failures[key] = (1 if now - last > FORGET_S else count + 1, now)
            if len(self._failures) > 10_000:  # a flood of names: forget the oldest half
                for key, _ in sorted(self._failures.items(), key=lambda kv: kv[1][1])[:5_000]:
                    del self._failures[key]

    async def hash(self, fn: Callable[[], Any]) -> Any:
        """Run a password check off the event loop, one at a time."""
        async with self._hashing:
            return await asyncio.to_thread(fn)
