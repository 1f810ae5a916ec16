"""The ops server on a real socket (uvicorn, the station's own protocol class) against a fake StationControl:
what only a real connection shows, namely silent and slow clients that would hold the station's file
descriptors, and a body that never completes."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import parse_config
from edge.ops import http, web
from edge.ops.http import OpsServer
from edge.ops.sources import OpsSources
from edge.service.control import Observers
from edge.service.pipeline import Counters
from edge.service.publisher import Tally
from edge.service.status import StatusBoard
from edge.service.supervise import supervised
from tests.edge.fakes import FakeControl


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(http, "HEADERS_TIMEOUT_S", 0.5)
    monkeypatch.setattr(web, "BODY_TIMEOUT_S", 0.5)
    cfg = parse_config({"cameras": [{"name": "c", "source": "sim://line"}], "model": {"bundle": "b"},
                        "prompts": "p.yaml", "ops": {"http": {"port": _free_port()}}}, "test")
    sources = OpsSources(control=FakeControl(), health=[], counters=Counters, tally=Tally, queue_depth=lambda: 0,
                         stalled_for=lambda: 0.0, backend="fake", state_dir=tmp_path, evidence_dir=tmp_path / "ev",
                         stall_after_s=5.0)
    status, stop = StatusBoard(), threading.Event()
    ops = OpsServer(cfg, sources, Observers(), lambda name, loop, restart=True: supervised(
        name, loop, status, stop, restart=restart)).start()
    yield ops.port
    ops.stop()
    stop.set()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes the connection (EOF) within ``seconds``; what it still sends (the rest of
    an answer) is read past."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            return False
    return False


def test_silent_and_slow_headers_are_closed_and_the_page_keeps_answering(server: int) -> None:
    silent = socket.create_connection(("127.0.0.1", server))
    slow = socket.create_connection(("127.0.0.1", server))
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the head never ends
    start = time.monotonic()
    assert _closed_within(silent, 5) and _closed_within(slow, 5)
    assert time.monotonic() - start < 3  # by the headers deadline, not by chance
    with urllib.request.urlopen(f"http://127.0.0.1:{server}/healthz", timeout=5) as r:
        assert r.status == 200 and "problems" in json.loads(r.read())
    silent.close()
    slow.close()


def test_a_kept_alive_connection_gets_its_deadline_again_after_each_answer(server: int) -> None:
    conn = socket.create_connection(("127.0.0.1", server))
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    conn.settimeout(5)
    assert conn.recv(4096).startswith(b"HTTP/1.1 ")
    assert _closed_within(conn, 5)  # then silent: closed (the keep-alive timeout is 5 s, this deadline 0.5 s)
    conn.close()


def test_a_body_that_never_completes_is_a_408(server: int) -> None:
    conn = socket.create_connection(("127.0.0.1", server))
    conn.sendall(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n" + b" " * 97)  # 3 bytes short
    conn.settimeout(5)
    assert conn.recv(4096).split(b"\r\n")[0] == b"HTTP/1.1 408 Request Timeout"
    conn.close()
