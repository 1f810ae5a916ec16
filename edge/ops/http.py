"""The one HTTP endpoint of the service: the web app of :mod:`edge.ops.web` under uvicorn, on a thread.

Loopback by default (``ops.http.host``). The socket is bound here, before the server
thread starts, so a port in use is a one-line config error at start-up, not a log line
from a thread nobody watches.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

import uvicorn

from edge.errors import ConfigError
from edge.ops.web import create_app

if TYPE_CHECKING:
    from edge.config import OpsConfig
    from edge.service.service import InspectionService

log = logging.getLogger("edge_inspect.http")


class OpsServer:
    def __init__(self, service: InspectionService, cfg: OpsConfig) -> None:
        self.cfg = cfg
        self.app = create_app(service, cfg)
        self.metrics = self.app.state.metrics
        host, port = cfg.http.host, cfg.http.port or 0
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
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="ops-http", daemon=True)

    def start(self) -> OpsServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        log.info("operator page, health and metrics on http://%s:%d/ (/healthz, /metrics)", self.cfg.http.host,
                 self.port)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
