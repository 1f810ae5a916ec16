"""``/metrics``: Prometheus text exposition with prometheus-client.

Most values are read at scrape time from the sources the composition root handed over, by
one custom collector (Frigate's approach: no per-frame bookkeeping on the hot path); the
two distributions - encoder seconds per batch and crops per batch - are histograms fed by
the station's ``on_batch`` observer.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

if TYPE_CHECKING:
    from collections.abc import Iterator

    from edge.ops.sources import OpsSources

PREFIX = "edge_inspect"
THERMAL = Path("/sys/devices/virtual/thermal")
JETSON_GPU_LOAD = Path("/sys/devices/gpu.0/load")  # per mille, on Jetson


def jetson_readings(thermal: Path = THERMAL, gpu_load: Path = JETSON_GPU_LOAD) -> dict[str, float]:
    """GPU/SoC temperatures (deg C) and GPU load (0-1) where the kernel exposes them; {} elsewhere."""
    out: dict[str, float] = {}
    for zone in sorted(thermal.glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            if "gpu" in kind.lower() or "soc" in kind.lower() or "cpu" in kind.lower():
                out[f"temp:{kind}"] = int((zone / "temp").read_text().strip()) / 1000
        except (OSError, ValueError):
            continue
    with contextlib.suppress(OSError, ValueError):
        out["gpu_load"] = int(gpu_load.read_text().strip()) / 1000
    return out


class ServiceCollector:
    """Reads cameras, queues, outbox, MQTT, verdicts and the prompt set on each scrape."""

    def __init__(self, sources: OpsSources) -> None:
        self.sources = sources
        self._last: dict[str, tuple[float, int]] = {}  # camera -> (time, frames) at the previous scrape
        self._lock = threading.Lock()

    def _fps(self, name: str, frames: int) -> float:
        now = time.monotonic()
        with self._lock:
            then, before = self._last.get(name, (now, frames))
            self._last[name] = (now, frames)
        return (frames - before) / (now - then) if now > then else 0.0

    def collect(self) -> Iterator[Any]:
        src = self.sources
        up = GaugeMetricFamily(f"{PREFIX}_camera_up", "1 while the camera delivers frames", labels=["camera"])
        fps = GaugeMetricFamily(f"{PREFIX}_camera_fps", "frames per second since the previous scrape",
                                labels=["camera"])
        frames = CounterMetricFamily(f"{PREFIX}_camera_frames", "frames captured", labels=["camera"])
        dropped = CounterMetricFamily(f"{PREFIX}_camera_frames_dropped",
                                      "frames replaced by a newer one before inference took them", labels=["camera"])
        reconnects = CounterMetricFamily(f"{PREFIX}_camera_reconnects", "reconnect attempts", labels=["camera"])
        unreadable = CounterMetricFamily(f"{PREFIX}_camera_frames_unreadable", "replayed files that could not be "
                                         "decoded (skipped)", labels=["camera"])
        for name, cam in src.control.cameras().items():
            up.add_metric([name], 1.0 if cam.state == "streaming" and not cam.stale else 0.0)
            fps.add_metric([name], self._fps(name, cam.frames))
            frames.add_metric([name], cam.frames)
            dropped.add_metric([name], cam.skipped)
            reconnects.add_metric([name], cam.reconnects)
            unreadable.add_metric([name], cam.unreadable)
        yield from (up, fps, frames, dropped, reconnects, unreadable)
        yield GaugeMetricFamily(f"{PREFIX}_result_queue_depth", "results waiting for the publisher",
                                value=src.queue_depth())
        yield GaugeMetricFamily(f"{PREFIX}_inference_stalled_seconds", "seconds since the inference loop last turned",
                                value=src.stalled_for())
        counters = src.counters()
        yield CounterMetricFamily(f"{PREFIX}_inspected_frames", "frames inspected", value=counters.inspected)
        yield CounterMetricFamily(f"{PREFIX}_triggers_timed_out", "triggers that got no frame within "
                                  "trigger.timeout_s", value=counters.triggers_timed_out)
        verdicts = CounterMetricFamily(f"{PREFIX}_verdicts", "results by verdict and deciding category",
                                       labels=["verdict", "category"])
        for (verdict, category), n in sorted(src.tally().by_category.items()):
            verdicts.add_metric([verdict, category], n)
        yield verdicts
        state = src.control.prompt_state
        info = InfoMetricFamily(f"{PREFIX}_prompt_set", "the active prompt set")
        info.add_metric([], {"name": state.prompts.name, "version": state.version})
        yield info
        yield GaugeMetricFamily(f"{PREFIX}_healthy", "1 when the status board has no problem",
                                value=1.0 if src.control.status()["state"] == "online" else 0.0)
        if src.outbox_stats is not None:
            stats = src.outbox_stats()
            yield GaugeMetricFamily(f"{PREFIX}_outbox_backlog", "results not yet acknowledged by the broker",
                                    value=float(stats["backlog"] or 0))
            yield GaugeMetricFamily(f"{PREFIX}_outbox_oldest_undelivered_seconds",
                                    "age of the oldest undelivered result (0 when none)",
                                    value=float(stats["oldest_undelivered_s"] or 0))
        if src.mqtt_connected is not None:
            yield GaugeMetricFamily(f"{PREFIX}_mqtt_connected", "1 while connected to the broker",
                                    value=1.0 if src.mqtt_connected() else 0.0)
        readings = jetson_readings()
        if readings:
            temp = GaugeMetricFamily(f"{PREFIX}_soc_temperature_celsius", "thermal zones (Jetson)", labels=["zone"])
            for key, value in readings.items():
                if key.startswith("temp:"):
                    temp.add_metric([key[5:]], value)
            yield temp
            if "gpu_load" in readings:
                yield GaugeMetricFamily(f"{PREFIX}_gpu_load_ratio", "GPU load 0-1 (Jetson)", value=readings["gpu_load"])


class Metrics:
    """A registry of its own (no process-global state); ``observe`` is the station's on_batch observer."""

    def __init__(self, sources: OpsSources) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(ServiceCollector(sources))  # type: ignore[arg-type]
        self.inference = Histogram(f"{PREFIX}_inference_seconds", "encoder time per batch", registry=self.registry,
                                   buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0))
        self.batch = Histogram(f"{PREFIX}_batch_crops", "crops per encoder batch", registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128))

    def observe(self, crops: int, seconds: float) -> None:
        self.inference.observe(seconds)
        self.batch.observe(crops)

    def exposition(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
