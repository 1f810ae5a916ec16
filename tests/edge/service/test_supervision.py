"""No thread dies silently: a fault in any loop shows in /healthz and the MQTT status within 2 s,
and the station recovers (the loop restarts) or stops with a non-zero exit code."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.app import RunningStation, build_station
from edge.config import ServiceConfig
from edge.results import InspectionResult
from edge.service.sinks import SinkBase
from edge.service.status import StatusBoard
from edge.service.supervise import supervised
from tests.edge.conftest import Collector
from tests.edge.mqtt.conftest import Broker, Subscriber
from tests.edge.ops.conftest import get, wait_for

STATUS = "inspect/s/l/st/status"


class Once:
    """Wraps a callable so that its next call raises; later calls go through."""

    def __init__(self, fn: Callable[..., Any], error: BaseException) -> None:
        self.fn, self.error, self.armed = fn, error, True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            raise self.error
        return self.fn(*args, **kwargs)


# ---- the boundary itself (fast, no station) ----
def test_a_failing_loop_is_reported_and_restarted() -> None:
    status, stop = StatusBoard(), threading.Event()
    runs: list[int] = []

    def loop() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise OSError(28, "No space left on device")

    thread = supervised("worker", loop, status, stop, healthy_after_s=0.2)
    thread.join(5)
    assert len(runs) == 3 and thread.failures == 2 and not thread.is_alive()
    assert status.state == "online"  # the loop ended normally at last: the problem is cleared


def test_a_loop_that_keeps_failing_stays_reported(caplog: pytest.LogCaptureFixture) -> None:
    status, stop = StatusBoard(), threading.Event()
    thread = supervised("worker", lambda: 1 / 0, status, stop)
    wait_for(lambda: thread.failures >= 2, timeout=5)
    assert "thread worker: ZeroDivisionError" in status.summary()
    stop.set()
    thread.join(5)
    assert "Traceback" in caplog.text and "ZeroDivisionError" in caplog.text  # logged with its traceback


def test_a_loop_that_cannot_restart_stops_the_station() -> None:
    status, stop = StatusBoard(), threading.Event()
    fatal: list[str] = []
    supervised("server", lambda: 1 / 0, status, stop, restart=False, on_fatal=fatal.append).join(5)
    assert fatal == ["thread server failed and cannot be restarted"]


# ---- every loop of a real station ----
@pytest.fixture
def station(config: Callable[..., ServiceConfig],
            broker: Broker) -> Iterator[tuple[RunningStation, Collector, Subscriber]]:
    sink = Collector()
    mes = Subscriber(broker.port, STATUS)
    cfg = config(mqtt={"host": "127.0.0.1", "port": broker.port})
    with build_station(cfg, sinks=[sink]) as running:
        sink.wait_for(lambda rs: len(rs) >= 3)
        yield running, sink, mes
    mes.close()


def _reported(running: RunningStation, mes: Subscriber, thread: str) -> None:
    """Within 2 s the thread's failure is a problem in /healthz and in the retained MQTT status."""
    port = running.ops.port
    start = time.monotonic()
    wait_for(lambda: f"thread {thread}" in json.loads(get(port, "/healthz")[1])["problems"], timeout=2)
    wait_for(lambda: any(f"thread {thread}: " in r for s in mes.on("/status") for r in s["reasons"]),
             timeout=max(0.05, 2 - (time.monotonic() - start)) + 0.5)  # + one restart backoff (the sender's)
    assert get(port, "/healthz")[0] == 503


def _recovers(running: RunningStation, sink: Collector, thread: str) -> None:
    count = len(sink.results)
    sink.wait_for(lambda rs: len(rs) >= count + 3, timeout=15)  # results flow again
    wait_for(lambda: f"thread {thread}" not in json.loads(get(running.ops.port, "/healthz")[1])["problems"],
             timeout=15)
    seqs = [r.seq for r in sink.results]
    assert seqs == list(range(1, len(seqs) + 1))  # nothing lost, nothing numbered twice


def test_camera_loop(station: tuple[RunningStation, Collector, Subscriber]) -> None:
    running, sink, mes = station
    cam = running.pipeline.cameras["cam1"]
    cam._publish = Once(cam._publish, RuntimeError("driver bug"))  # type: ignore[method-assign]
    _reported(running, mes, "camera-cam1")
    _recovers(running, sink, "camera-cam1")


def test_inference_loop(station: tuple[RunningStation, Collector, Subscriber]) -> None:
    running, sink, mes = station
    pipe = running.pipeline
    pipe.inspect = Once(pipe.inspect, RuntimeError("CUDA error: an illegal memory access"))  # type: ignore[method-assign]
    _reported(running, mes, "inference")
    _recovers(running, sink, "inference")


def test_publisher_loop_keeps_its_numbered_batch(station: tuple[RunningStation, Collector, Subscriber]) -> None:
    running, sink, mes = station
    pub = running.pipeline.publisher
    collector = pub.sinks[-1]
    collector.write_many = Once(collector.write_many, OSError(28, "No space left on device"))  # type: ignore[method-assign]
    _reported(running, mes, "publisher")
    _recovers(running, sink, "publisher")


def test_mqtt_command_loop(station: tuple[RunningStation, Collector, Subscriber], broker: Broker) -> None:
    running, sink, mes = station
    bridge = running.bridge
    bridge._answer = Once(bridge._answer, RuntimeError("bug"))  # type: ignore[method-assign]
    client = Subscriber(broker.port, "inspect/s/l/st/cmd/+/response")
    try:
        client.publish("inspect/s/l/st/cmd/reload", {"id": "r1"})
        _reported(running, mes, "mqtt-commands")
        client.publish("inspect/s/l/st/cmd/reload", {"id": "r2"})  # answered by the restarted loop
        client.wait(lambda s: any(r.get("id") == "r2" and r["ok"] for r in s.on("/response")), timeout=15)
    finally:
        client.close()
    _recovers(running, sink, "mqtt-commands")


def test_mqtt_sender_loop(station: tuple[RunningStation, Collector, Subscriber], broker: Broker) -> None:
    """The loop that sends the outbox: an error in it is reported; the restarted loop delivers every result,
    in order, each seq once (a result whose ack was in flight may come again, marked replayed)."""
    import sqlite3

    running, sink, mes = station
    results = Subscriber(broker.port, "inspect/s/l/st/+/result")
    try:
        link = running.bridge.link
        link._send_pending = Once(link._send_pending, sqlite3.OperationalError("disk I/O error"))  # type: ignore[method-assign]
        _reported(running, mes, "mqtt-sender")
        _recovers(running, sink, "mqtt-sender")
        last = sink.results[-1].seq
        results.wait(lambda s: any(r["seq"] >= last for r in s.results()), timeout=15)
        seqs = sorted({r["seq"] for r in results.results()})
        assert seqs[-1] >= last and seqs == list(range(seqs[0], seqs[-1] + 1))  # no gap after the restart
    finally:
        results.close()


def test_prompt_watcher(station: tuple[RunningStation, Collector, Subscriber]) -> None:
    running, sink, mes = station
    prompts = running.prompts
    prompts.reload_if_changed = Once(prompts.reload_if_changed, OSError(5, "Input/output error"))  # type: ignore[method-assign]
    _reported(running, mes, "prompt-watch")
    _recovers(running, sink, "prompt-watch")


def test_a_dead_http_server_stops_the_station_non_zero(config: Callable[..., ServiceConfig], broker: Broker,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    def dies(self: Any, sockets: Any = None) -> None:
        time.sleep(0.3)
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(uvicorn.Server, "run", dies)
    mes = Subscriber(broker.port, STATUS)
    try:
        with build_station(config(mqtt={"host": "127.0.0.1", "port": broker.port})) as running:
            start = time.monotonic()
            running.run(duration=10)
            assert time.monotonic() - start < 5 and running.exit_code == 1
            mes.wait(lambda s: any("thread ops-http: OSError" in r for st in s.on("/status") for r in st["reasons"]),
                     timeout=2)
    finally:
        mes.close()


class FullDisk(SinkBase):
    """A sink on a disk that is full for a while, then has room again."""

    name = "full-disk"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.results: list[InspectionResult] = []

    def write_many(self, results: list[InspectionResult]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        self.results.extend(results)


def test_a_full_disk_degrades_then_recovers_without_losing_a_numbered_result(
        config: Callable[..., ServiceConfig], tmp_path: Path) -> None:
    disk = FullDisk(failures=4)  # about 0.5 + 1 + 2 + 4 s of backoff
    with build_station(config(results={"queue": 4}), sinks=[disk]) as running:
        wait_for(lambda: "thread publisher" in running.status.summary(), timeout=5)
        wait_for(lambda: "result queue full" in running.status.summary(), timeout=10)  # inference waits
        wait_for(lambda: len(disk.results) >= 10, timeout=30)
        wait_for(lambda: running.status.state == "online", timeout=15)  # and the box says so again
    seqs = [r.seq for r in disk.results]
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_stop_during_a_full_disk_is_prompt(config: Callable[..., ServiceConfig]) -> None:
    """SIGTERM while the disk is full (it hung over 40 s before the boundary): the station stops well within
    systemd's TimeoutStopSec."""
    disk = FullDisk(failures=10_000)
    start = 0.0
    with build_station(config(results={"queue": 4}), sinks=[disk]) as running:
        wait_for(lambda: "thread publisher" in running.status.summary(), timeout=10)
        running.request_stop()
        start = time.monotonic()
    assert time.monotonic() - start < 15  # TimeoutStopSec is 90 s
    assert disk.results == []
