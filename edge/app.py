"""The composition root: the one place that builds a station and wires its parts.

``build_station(config)`` opens the bundle and encoders, the prompt manager, the sequence
counter, the evidence store, the sinks (the durable outbox first), the pipeline, the MQTT
bridge and the ops server, under one ``ExitStack``, and hands each part only what it needs:
the bridge and the web app get a :class:`~edge.service.control.StationControl` and register
observers here; health and metrics get their sources. No other module builds these parts or
imports the station (Frigate's ``FrigateApp`` is the model). ``run``, ``demo``, ``bench
pipeline`` and the tests all start a station through it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

import edge
from edge.bundle import Bundle
from edge.config import ServiceConfig
from edge.errors import ConfigError
from edge.inspect.prompt_state import PromptState
from edge.model import ZeroShotModel
from edge.results import ModelRef
from edge.service.control import HealthSource, Observers
from edge.service.evidence import EvidenceStore
from edge.service.pipeline import Counters, Pipeline
from edge.service.prompts import PromptManager
from edge.service.publisher import Publisher
from edge.service.sequence import SequenceCounter
from edge.service.sinks import JsonLinesSink, Sink, StdoutSink
from edge.service.station import Station
from edge.service.status import StatusBoard

if TYPE_CHECKING:
    from edge.mqtt.bridge import MqttBridge
    from edge.ops.sources import OpsSources

log = logging.getLogger("edge_inspect.app")


def check_state_dir(path: Path) -> None:
    """The state dir holds seq, outbox and edits: an unusable one is a config error before anything starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"state_dir {path}: not a writable folder ({err.strerror}); point state_dir at a "
                          "writable folder (systemd: StateDirectory=).") from err


def _open_model(bundle: Bundle, config: ServiceConfig, status: StatusBoard) -> ZeroShotModel:
    from edge.encoders.select import open_encoders

    encoders = open_encoders(bundle, config.model)
    if encoders.note:  # the MQTT status carries it either way
        status.fact("backend_note", encoders.note)
    if encoders.note and config.model.backend == "tensorrt":
        status.problem("encoder", encoders.note)  # asked for TensorRT, fell back: degraded too
    return ZeroShotModel(bundle, encoders.image, encoders.text)


class RunningStation:
    """What ``build_station`` returns: the station and its adapters, closed together (a context manager)."""

    def __init__(self, config: ServiceConfig, station: Station, stack: contextlib.ExitStack) -> None:
        self.config = config
        self.station = station
        self.bridge: Any = None  # MqttBridge when mqtt is configured
        self.ops: Any = None  # OpsServer when ops.http.port is set
        self._stack = stack

    # the parts tests and commands look at
    @property
    def status(self) -> StatusBoard:
        return self.station.status_board

    @property
    def prompts(self) -> PromptManager:
        return self.station.prompts

    @property
    def prompt_state(self) -> PromptState:
        return self.station.prompt_state

    @property
    def pipeline(self) -> Pipeline:
        return self.station.pipeline

    @property
    def counters(self) -> Counters:
        return self.station.pipeline.counters

    @property
    def exit_code(self) -> int:
        return self.station.exit_code

    def recent(self) -> list[Any]:
        return self.station.recent()

    def run(self, duration: float | None = None) -> None:
        self.station.run(duration)

    def request_stop(self) -> None:
        self.station.request_stop()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> RunningStation:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _sinks(config: ServiceConfig, extra: list[Sink], stack: contextlib.ExitStack) -> list[Sink]:
    sinks: list[Sink] = list(extra)
    if config.results.jsonl is not None:
        sinks.append(JsonLinesSink(config.results.jsonl))
    if config.results.stdout:
        sinks.append(StdoutSink())
    for sink in sinks:
        stack.callback(sink.close)
    return sinks


def build_station(config: ServiceConfig, sinks: list[Sink] | None = None,
                  model: ZeroShotModel | None = None) -> RunningStation:
    """Build and start every part; anything wrong is found before the first frame and closes what
    was opened. ``model`` lets a test share encoders; ``sinks`` are added after the outbox."""
    stack = contextlib.ExitStack()
    try:
        return _build(config, sinks or [], model, stack)
    except BaseException:
        stack.close()
        raise


def one_blas_thread() -> None:
    """numpy's BLAS (OpenBLAS) to one thread, for the whole process.

    The encoder's runtime owns the cores (ONNX Runtime's intra-op pool); the station's own numpy work per
    frame is small matrix products (scores, the memory's projection and search). With BLAS's own pool of
    one thread per core those products wait on threads that fight the encoder's (ONNX Runtime's workers
    spin for a while after each run): measured on the 2-core development machine right after an encoder
    call, the memory's PCA projection of one tile took 3.0 ms with OpenBLAS's default threads and 0.21 ms
    with one. Process-wide because OpenBLAS has one pool; calibration and export, which do large
    products, never build a station.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _build(config: ServiceConfig, extra_sinks: list[Sink], model: ZeroShotModel | None,
           stack: contextlib.ExitStack) -> RunningStation:
    check_state_dir(config.state_dir)
    one_blas_thread()
    status, observers, stop = StatusBoard(), Observers(), threading.Event()
    status.listeners.append(lambda summary: observers.notify("on_status", summary))
    bundle = Bundle.open(config.model.bundle)
    if model is None:
        model = _open_model(bundle, config, status)
    stack.callback(model.close)
    size = bundle.manifest.image.size
    model.embed_pixels(model.inputs([np.zeros((size, size, 3), np.uint8)]))  # warm-up before the first frame
    model_ref = ModelRef(name=bundle.manifest.name, precision=config.model.precision, bundle=bundle.hash[:16],
                         backend=model.image_encoder.name, family=bundle.family)
    status.fact("version", edge.__version__)
    status.fact("model", model_ref.model_dump())
    observers.on_prompt_change.append(lambda s: status.fact("prompt_set", {"name": s.prompts.name,
                                                                          "version": s.version}))
    observers.on_prompt_change.append(lambda s: status.fact(
        "memory", {"version": s.memory_version, "images": s.good_images} if s.memories else None))
    prompts = PromptManager(model, config.prompts, config.state_dir,
                            on_change=lambda s: observers.notify("on_prompt_change", s), views=config.cameras)
    first = prompts.start()
    status.fact("prompt_set", {"name": first.prompts.name, "version": first.version})
    if first.memories:
        status.fact("memory", {"version": first.memory_version, "images": first.good_images})
    seq = SequenceCounter(config.state_dir / "sequence.sqlite")
    stack.callback(seq.close)
    evidence = EvidenceStore(config.evidence_dir, int(config.evidence.max_mb * 1e6), config.evidence.jpeg_quality)
    sinks: list[Sink] = []
    outbox = None
    if config.mqtt is not None:
        from edge.mqtt.outbox import Outbox, OutboxSink

        ob = config.mqtt.outbox
        outbox = Outbox(config.state_dir / "outbox.sqlite", ob.max_rows, ob.policy, ob.keep_delivered_s,
                        ob.synchronous)
        stack.callback(outbox.close)
        outbox.prune()
        highest = outbox.last_seq()
        moved = seq.advance_to(highest)
        if moved:  # the outbox (which outlives pruning) has seen higher seqs than the counter: never reuse one
            log.warning("%s was %d behind the outbox's highest seq %d (lost, or restored from an older backup?): "
                        "numbering continues after it", config.state_dir / "sequence.sqlite", moved, highest)
        wake = _Wake()
        sinks.append(OutboxSink(outbox, wake, status.problem, stop))
    sinks += _sinks(config, extra_sinks, stack)
    publisher = Publisher(config, seq, evidence, sinks, status, observers, stop)
    pipeline = Pipeline(config, model, model_ref, lambda: prompts.state, publisher, status, observers, stop)
    station = Station(config, pipeline, prompts, status, stop)
    running = RunningStation(config, station, stack)
    if config.mqtt is not None and outbox is not None:
        from edge.mqtt.bridge import MqttBridge

        running.bridge = MqttBridge(station, config.mqtt, config.station, outbox, status, observers,
                                    station.supervise)
        wake.target = running.bridge.link.wake
        stack.callback(running.bridge.stop)
    if config.ops.http.port is not None:
        from edge.ops.http import OpsServer

        running.ops = OpsServer(config, _ops_sources(station, running.bridge, config), observers,
                                station.supervise)
        stack.callback(running.ops.stop)
    stack.callback(station.close)  # runs first: stop capture, drain results, then the adapters close
    station.start()
    if running.bridge is not None:
        running.bridge.start()
    if running.ops is not None:
        running.ops.start()
    log.info("station started: %d camera(s), bundle %s, prompt set %s %s", len(config.cameras),
             bundle.manifest.name, first.prompts.name, first.version)
    return running


def _ops_sources(station: Station, bridge: MqttBridge | None, config: ServiceConfig) -> OpsSources:
    """What the ops server reads, handed over by the root (the server never sees the station or the bridge)."""
    from edge.ops.sources import LinkHealth, OpsSources, OutboxHealth, PipelineHealth

    pipeline = station.pipeline
    backend = pipeline.model_ref.backend
    health: list[HealthSource] = [PipelineHealth(pipeline, config.ops.stall_after_s, backend)]
    outbox_stats = mqtt_connected = None
    if bridge is not None:
        link = bridge.link
        outbox_stats = bridge.outbox.stats
        mqtt_connected = lambda: bool(link.state.connected)  # noqa: E731
        health.append(OutboxHealth(outbox_stats, config.mqtt.ack_alarm_s if config.mqtt else 10.0))
        health.append(LinkHealth(mqtt_connected, lambda: link.state.last_error))
    return OpsSources(control=station, health=health, counters=lambda: pipeline.counters,
                      tally=lambda: pipeline.publisher.tally, queue_depth=lambda: pipeline.publisher.queue_depth,
                      stalled_for=pipeline.stalled_for,
                      backend=backend, state_dir=config.state_dir, evidence_dir=config.evidence_dir,
                      stall_after_s=config.ops.stall_after_s, outbox_stats=outbox_stats,
                      mqtt_connected=mqtt_connected)


class _Wake:
    """The outbox sink's nudge to the MQTT link, wired once the link exists."""

    def __init__(self) -> None:
        self.target: Any = None

    def __call__(self) -> None:
        if self.target is not None:
            self.target()
