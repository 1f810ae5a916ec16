"""The one HTTP endpoint of the station: the web app of :mod:`edge.ops.web` under uvicorn.

Loopback by default (``ops.http.host``). The socket is bound here, before the server runs,
so a port in use is a one-line config error at start-up, not a log line from a thread
nobody watches. The server runs on a supervised thread that is not restarted: if it dies,
the station reports it (MQTT status, the watchdog) and stops with a non-zero exit code, so
systemd starts it again with a fresh socket.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from edge.config import ServiceConfig
from edge.errors import ConfigError
from edge.ops.metrics import Metrics
from edge.ops.sources import OpsSources
from edge.ops.web import create_app
from edge.service.control import Observers

log = logging.getLogger("edge_inspect.http")

Supervise = Callable[..., Any]

HEADERS_TIMEOUT_S = 10.0  # a request's head must arrive within this of the connection's start or last answer


class HeadersDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head.

    uvicorn times out a kept-alive connection only after a first response, so silent sockets (or
    headers sent a byte a minute) would hold the station's file descriptors for good: 1,030 of
    them stopped a station at its open-file limit. A connection that has no request in progress
    and has not sent a complete request head within HEADERS_TIMEOUT_S is closed; bodies have
    their own deadline (edge.ops.web.read_body, 408)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(HEADERS_TIMEOUT_S, self._expire, self.cycle)

    def _expire(self, cycle: Any) -> None:
        idle = self.cycle is cycle and (cycle is None or cycle.response_complete)  # no request head since
        if idle and not self.transport.is_closing():
            log.debug("closing a connection that sent no request head within %g s", HEADERS_TIMEOUT_S)
            self.transport.close()


class OpsServer:
    def __init__(self, config: ServiceConfig, sources: OpsSources, observers: Observers, supervise: Supervise) -> None:
        self.cfg = config.ops
        self.metrics = Metrics(sources)
        observers.on_batch.append(self.metrics.observe)
        self.app = create_app(sources, self.cfg, self.metrics)
        self._supervise = supervise
        host, port = self.cfg.http.host, self.cfg.http.port or 0
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as err:
            self._sock.close()
            raise ConfigError(f"ops.http {host}:{port}: cannot listen ({err.strerror}); choose another "
                              "ops.http.port or stop what uses it.") from err
        self.port = int(self._sock.getsockname()[1])
        config_ = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                 timeout_keep_alive=5, limit_concurrency=256, http=HeadersDeadline,
                                 ws="none")  # no WebSocket routes: an upgrade is not a way around the deadline
        self._server = uvicorn.Server(config_)
        self._thread: Any = None

    def _serve(self) -> None:
        self._server.run(sockets=[self._sock])
        if not self._server.should_exit:
            raise RuntimeError("the HTTP server stopped on its own")

    def start(self) -> OpsServer:
        self._thread = self._supervise("ops-http", self._serve, restart=False)
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        log.info("operator page, health and metrics on http://%s:%d/ (/healthz, /metrics)", self.cfg.http.host,
                 self.port)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()
