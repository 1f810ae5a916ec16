"""/healthz and /metrics over real HTTP, with faults driven for real: a dead camera, a hung
encoder, a broker outage (mosquitto killed) and a full outbox."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.app import RunningStation, build_station
from edge.bundle import Bundle
from edge.config import ServiceConfig
from edge.encoders.onnxruntime import OrtTextEncoder
from edge.model import ZeroShotModel
from edge.ops.metrics import jetson_readings
from tests.edge.ops.conftest import Broker, HangingEncoder, get, wait_for


def health(svc: RunningStation) -> tuple[int, dict[str, Any]]:
    assert svc.ops is not None
    code, body = get(svc.ops.port, "/healthz")
    return code, json.loads(body)


def test_healthy_service_and_its_metrics(config: Callable[..., ServiceConfig]) -> None:
    with build_station(config()) as svc:
        wait_for(lambda: svc.counters.inspected >= 5)
        code, body = health(svc)
        assert code == 200 and body["healthy"] and body["problems"] == {}
        assert body["cameras"]["cam1"]["state"] == "streaming" and body["encoder"]["backend"] == "onnxruntime"
        get(svc.ops.port, "/metrics")  # first scrape sets the fps baseline  # type: ignore[union-attr]
        time.sleep(0.5)
        code, text = get(svc.ops.port, "/metrics")  # type: ignore[union-attr]
        assert get(svc.ops.port, "/nope")[0] == 404  # type: ignore[union-attr]
    assert code == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("edge_inspect_camera_up", (("camera", "cam1"),))] == 1.0
    assert samples[("edge_inspect_camera_fps", (("camera", "cam1"),))] > 0
    assert samples[("edge_inspect_camera_frames_total", (("camera", "cam1"),))] >= 5
    batches = samples[("edge_inspect_inference_seconds_count", ())]
    assert batches >= 5 and samples[("edge_inspect_batch_crops_count", ())] == batches
    verdicts = {k: v for k, v in samples.items() if k[0] == "edge_inspect_verdicts_total"}
    assert verdicts and sum(verdicts.values()) >= 5 and all(dict(k[1])["category"] for k in verdicts)
    info = next(k for k in samples if k[0] == "edge_inspect_prompt_set_info")
    assert dict(info[1])["version"] == svc.prompt_state.version
    assert samples[("edge_inspect_healthy", ())] == 1.0


def test_a_dead_camera_makes_it_unhealthy(config: Callable[..., ServiceConfig]) -> None:
    cfg = config([{"name": "door", "source": "rtsp://127.0.0.1:9/none"}])
    with build_station(cfg) as svc:
        code, body = wait_for(lambda: (r := health(svc))[0] == 503 and r)
        assert "camera door" in body["problems"] and body["cameras"]["door"]["state"] == "reconnecting"


def test_a_hung_encoder_makes_it_unhealthy(config: Callable[..., ServiceConfig]) -> None:
    cfg = config()
    bundle = Bundle.open(cfg.model.bundle)
    encoder = HangingEncoder(bundle.path("vision"))
    model = ZeroShotModel(bundle, encoder, OrtTextEncoder(bundle.path("text")))
    with build_station(cfg, model=model) as svc:
        wait_for(lambda: svc.counters.inspected >= 2)
        assert health(svc)[0] == 200
        encoder.hang()
        encoder.hanging.wait(10)
        code, body = wait_for(lambda: (r := health(svc))[0] == 503 and r)
        assert "inference loop stalled" in body["problems"]["encoder"]
        encoder.release()
        wait_for(lambda: health(svc)[0] == 200)


def test_a_broker_outage_and_a_full_outbox_make_it_unhealthy(config: Callable[..., ServiceConfig],
                                                              broker: Broker) -> None:
    cfg = config(mqtt={"host": "127.0.0.1", "port": broker.port, "client_id": "st1",
                       "outbox": {"max_rows": 20, "policy": "drop_oldest"}})
    with build_station(cfg) as svc:
        wait_for(lambda: svc.bridge is not None and svc.bridge.link.state.connected)
        wait_for(lambda: health(svc)[0] == 200)
        broker.kill()
        code, body = wait_for(lambda: (r := health(svc))[0] == 503 and "outbox" in r[1]["problems"] and r)
        assert "mqtt" in body["problems"] and body["mqtt"]["connected"] is False
        assert "undelivered" in body["problems"]["outbox"] and body["outbox"]["backlog"] >= 18
        _, text = get(svc.ops.port, "/metrics")  # type: ignore[union-attr]
        assert "edge_inspect_mqtt_connected 0.0" in text and "edge_inspect_outbox_backlog" in text


def test_a_hung_broker_is_reported_from_the_oldest_unacknowledged_result(config: Callable[..., ServiceConfig],
                                                                        broker: Broker) -> None:
    """A frozen broker (SIGSTOP) keeps its TCP connection: the link looks up, nothing is acknowledged. /healthz
    says so from the outbox's oldest undelivered age (mqtt.ack_alarm_s), and clears when the broker wakes."""
    cfg = config(mqtt={"host": "127.0.0.1", "port": broker.port, "keepalive": 60, "ack_alarm_s": 1.5})
    with build_station(cfg) as svc:
        wait_for(lambda: svc.bridge is not None and svc.bridge.link.state.connected)
        wait_for(lambda: health(svc)[0] == 200)
        broker.pause()
        try:
            code, body = wait_for(lambda: (r := health(svc))[0] == 503 and "broker" in r[1]["problems"] and r,
                                  timeout=10)
            assert "broker not acknowledging" in body["problems"]["broker"] and body["mqtt"]["connected"]
        finally:
            broker.resume()
        wait_for(lambda: "broker" not in health(svc)[1]["problems"], timeout=20)


def test_unreadable_replay_files_are_counted_in_health_and_metrics(config: Callable[..., ServiceConfig],
                                                                   tmp_path: Path) -> None:
    import cv2
    import numpy as np

    folder = tmp_path / "cam"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), np.full((120, 160, 3), 40 * i, np.uint8))
    (folder / "f001b.png").write_bytes(b"\x89PNG broken")
    with build_station(config([{"name": "cam1", "source": str(folder)}])) as svc:
        wait_for(lambda: health(svc)[1]["cameras"]["cam1"]["unreadable"] >= 1)
        _, text = get(svc.ops.port, "/metrics")  # type: ignore[union-attr]
    assert 'edge_inspect_camera_frames_unreadable_total{camera="cam1"}' in text


def test_jetson_readings_where_the_kernel_exposes_them(tmp_path: Path) -> None:
    zone = tmp_path / "thermal_zone1"
    zone.mkdir()
    (zone / "type").write_text("GPU-therm\n")
    (zone / "temp").write_text("48500\n")
    other = tmp_path / "thermal_zone2"
    other.mkdir()
    (other / "type").write_text("PMIC-Die\n")
    (other / "temp").write_text("100000\n")
    (tmp_path / "load").write_text("372\n")
    assert jetson_readings(tmp_path, tmp_path / "load") == {"temp:GPU-therm": 48.5, "gpu_load": 0.372}
    assert jetson_readings(tmp_path / "none", tmp_path / "none") == {}  # not a Jetson


def test_a_failing_source_is_reported_not_silently_dead(config: Callable[..., ServiceConfig],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: the simulator raises on its third frame, as a buggy driver would."""
    from edge.sim import LineSimulator

    real = LineSimulator.frame

    def frame(self: LineSimulator, index: int) -> Any:
        if index == 2:
            raise ValueError("driver returned a corrupt buffer")
        return real(self, index)

    monkeypatch.setattr(LineSimulator, "frame", frame)
    with build_station(config()) as svc:
        code, body = wait_for(lambda: (r := health(svc))[0] == 503 and r)
        assert "source failed: ValueError: driver returned a corrupt buffer" in body["problems"]["camera cam1"]
