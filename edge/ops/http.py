"""The local HTTP endpoint: ``/healthz`` (200 or 503 with a JSON body) and ``/metrics``.

The standard library's threading server is enough for a scrape every few seconds and a
load balancer's health probe; it binds to loopback unless the config says otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST

from edge.errors import ConfigError
from edge.ops.health import health
from edge.ops.metrics import Metrics

if TYPE_CHECKING:
    from edge.config import OpsConfig
    from edge.service.service import InspectionService

log = logging.getLogger("edge_inspect.http")


class OpsServer:
    def __init__(self, service: InspectionService, cfg: OpsConfig) -> None:
        self.service = service
        self.cfg = cfg
        self.metrics = Metrics(service)
        handler = self._handler()
        host, port = cfg.http.host, cfg.http.port or 0
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as err:
            raise ConfigError(f"ops.http {host}:{port}: cannot listen ({err.strerror}); choose another "
                              "ops.http.port or stop what uses it.") from err
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="ops-http", daemon=True)

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.cfg.http.host, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok, body = health(ops.service, ops.cfg.stall_after_s)
                    self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, ops.metrics.exposition())
                else:
                    self._send(404, "text/plain", b"not found: try /healthz or /metrics\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server API
                log.debug("%s " + format, self.address_string(), *args)

        return Handler
