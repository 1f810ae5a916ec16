"""sd_notify over a real datagram socket, as systemd listens for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.ops.notify import Notifier, Watchdog, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()


def messages(sock: socket.socket, until: str, timeout: float = 20) -> list[str]:
    """Datagrams until one contains ``until`` (each as its text)."""
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if until in out[-1]:
            return out
    raise AssertionError(f"no {until!r} within {timeout} s; got {out}")


def test_ready_status_watchdog_and_stopping_are_datagrams(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(path)
    assert n.ready("online") and n.status("degraded: camera cam1: reconnecting") and n.watchdog() and n.stopping()
    assert [sock.recv(4096).decode() for _ in range(4)] == [
        "READY=1\nSTATUS=online", "STATUS=degraded: camera cam1: reconnecting", "WATCHDOG=1",
        "STOPPING=1\nSTATUS=draining queues"]


def test_abstract_socket_and_no_socket() -> None:
    name = f"edge-inspect-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    assert Notifier("@" + name).ready("x") and sock.recv(100) == b"READY=1\nSTATUS=x"
    sock.close()
    quiet = Notifier("")
    assert not quiet.enabled and not quiet.ready("x")  # outside systemd: a no-op


def test_watchdog_interval_follows_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert watchdog_interval() is None


def test_watchdog_pings_only_while_the_pipeline_progresses(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    alive = {"ok": True}
    import threading

    from edge.service.status import StatusBoard
    from edge.service.supervise import supervised

    stop = threading.Event()
    dog = Watchdog(Notifier(path), 0.05, lambda: alive["ok"]).start(
        lambda name, loop: supervised(name, loop, StatusBoard(), stop))
    assert messages(sock, "WATCHDOG=1")
    alive["ok"] = False
    time.sleep(0.2)  # pings already in flight drain
    sock.settimeout(0.3)
    drained = []
    while True:
        try:
            drained.append(sock.recv(100))
        except TimeoutError:
            break
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(100)  # nothing while stalled: systemd would restart the unit
    assert dog.withheld > 0
    dog.stop()
    stop.set()


def test_the_run_command_speaks_the_protocol(listener: tuple[socket.socket, str], tiny_bundles: dict[str, Path],
                                             tmp_path: Path) -> None:
    """A real `edge-inspect run` process: READY after start, watchdog pings, STOPPING on SIGTERM."""
    from tests.edge.conftest import PROMPTS

    sock, path = listener
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(PROMPTS)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli.main", "run", "--bundle", str(tiny_bundles["clip"]),
                             "--camera", "sim://line?seed=1&size=160x120&fps=10", "--prompts", str(prompts),
                             "--state-dir", str(tmp_path / "state"), "--log-format", "json"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        got = messages(sock, "READY=1", timeout=60)
        got += messages(sock, "WATCHDOG=1", timeout=10)
        proc.terminate()
        got += messages(sock, "STOPPING=1", timeout=30)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    ready = next(m for m in got if m.startswith("READY=1"))
    assert "STATUS=online" in ready
    import json

    lines = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]  # type: ignore[union-attr]
    assert lines and all({"ts", "level", "logger", "message"} <= set(x) for x in lines)
    assert any(x["message"].startswith("station started") for x in lines)
    assert len(lines) < 15  # state changes only: no line per frame at INFO


def test_a_failing_watchdog_loop_is_reported_and_restarted(listener: tuple[socket.socket, str]) -> None:
    """`run` starts the watchdog under the station's error boundary: an error in it shows on the status board
    (so in /healthz and the MQTT status) and the pings resume, never a silently dead thread."""
    import threading

    from edge.service.status import StatusBoard
    from edge.service.supervise import supervised

    sock, path = listener
    board, stop = StatusBoard(), threading.Event()
    calls = {"n": 0}

    def progressing() -> bool:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("pipeline state unreadable")
        return True

    dog = Watchdog(Notifier(path), 0.05, progressing).start(
        lambda name, loop: supervised(name, loop, board, stop, healthy_after_s=0.5))
    def reported() -> list[str]:
        return [r for r in board.snapshot()["reasons"] if r.startswith("thread watchdog:")]

    deadline = time.monotonic() + 2
    while not reported() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reported() and "pipeline state unreadable" in reported()[0]
    pings = dog.pings
    deadline = time.monotonic() + 5
    while dog.pings <= pings and time.monotonic() < deadline:  # pinging again after the restart
        time.sleep(0.02)
    assert dog.pings > pings
    dog.stop()
    stop.set()
