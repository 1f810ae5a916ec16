"""A throw-away mosquitto on a free loopback port (demo and benchmarks only)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from edge.errors import PublishError


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalBroker:
    """``with LocalBroker() as b: ... b.port``; anonymous, in memory, loopback only."""

    def __init__(self) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise PublishError("mosquitto is not installed; install it (apt-get install mosquitto) or "
                               "point the service at a broker with --mqtt HOST:PORT.")
        self.binary = binary
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="edge-inspect-broker-")
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalBroker:
        conf = Path(self._dir.name) / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 "log_dest none"]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise PublishError(f"mosquitto did not start on 127.0.0.1:{self.port}; run it by hand to see why.")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
        self._dir.cleanup()
