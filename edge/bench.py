"""Benchmarks (never timed unit tests): they print a table and write JSON.

``pipeline``: the service on N cameras as fast as it goes, with per-stage time per frame,
compared with the bare encoder at the same batch size. The cameras replay frames of the
simulated line, losslessly, so none are skipped: JPEG (``--capture jpeg``: decoding costs what an
MJPEG camera costs) or uncompressed BMP (``--capture raw``: what a GigE Vision or USB3 Vision
camera delivers; reading one is a copy, not a decode); rendering them live would take a core of
its own. On a small CPU the decode competes with the encoder for the same cores, which the two
captures show apart. The service's overhead is what the inference thread spends besides the
encoder (preprocessing, scoring, deciding) over the encoder's time; publishing runs on its own
thread and is reported beside it.
"""

from __future__ import annotations

import itertools
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from edge.bundle import Bundle
from edge.config import parse_config
from edge.encoders.onnxruntime import OrtImageEncoder
from edge.errors import ConfigError
from edge.inspect.tiles import tiles_for
from edge.model import ZeroShotModel
from edge.preprocess import model_input
from edge.sim import LineSimulator

FALLBACK_PROMPTS = """\
name: bench
templates: ["a photo of a {} part"]
categories:
  - {name: good, ok: true, prompts: ["flawless", "clean"]}
  - {name: scratch, prompts: ["scratched", "with a long thin scratch"]}
  - {name: hole, prompts: ["with a hole"]}
"""


def _write(report: dict[str, Any], out: Path | None) -> dict[str, Any]:
    """Every benchmark writes its report as JSON beside the table it prints."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def machine() -> str:
    """The CPU a number was measured on, with the features that change ONNX Runtime's speed (and its int8
    results): AVX-512 VNNI, AVX-512, AVX2."""
    import os

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    features = ("AVX-512 VNNI" if "avx512_vnni" in flags else "AVX-512, no VNNI" if "avx512f" in flags
                else "AVX2, no AVX-512" if "avx2" in flags else "no AVX2" if flags else platform.machine())
    return f"{model} ({features}), {os.cpu_count()} cores, {platform.system()}"


def bare_encoder_ms(model: ZeroShotModel, batch: int, seconds: float = 1.5) -> float:
    """Milliseconds per image for the encoder alone at this batch size: the median call over ``seconds`` (at least
    10 calls), after two warm-up calls; the median, because this is the reference every overhead divides by."""
    sim = LineSimulator(seed=0)
    pixels = model_input([sim.frame(i).image for i in range(batch)], model.bundle.manifest.image)
    for _ in range(2):
        model.embed_pixels(pixels)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while len(times) < 10 or time.perf_counter() < end:
        start = time.perf_counter()
        model.embed_pixels(pixels)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000 / batch


PRODUCT = "steel-plate"  # the frames the pipeline benchmark replays (and, with --memory, its good parts)


CAPTURE_SUFFIX = {"jpeg": ".jpg", "raw": ".bmp"}  # --capture: an MJPEG camera, or uncompressed frames


def _write_frames(folder: Path, count: int, seed: int, defect_rate: float, capture: str = "jpeg") -> Path:
    if not folder.exists():
        folder.mkdir(parents=True)
        line = LineSimulator(seed=seed, product=PRODUCT, defect_rate=defect_rate)
        for i in range(count):
            cv2.imwrite(str(folder / f"f{i:03d}{CAPTURE_SUFFIX[capture]}"), line.frame(i).image)
    return folder


def pipeline_run(bundle: Path, prompts: Path, cameras: int, seconds: float, tiles: dict[str, Any] | None,
                 workdir: Path, memory: bool = False, unbatched: bool = False, defect_rate: float = 0.5,
                 capture: str = "jpeg") -> dict[str, Any]:
    """One configuration, measured after a warm-up: frames/s, per-stage milliseconds per frame, skipped frames,
    and the bare encoder on the same crops at the same batch size, timed right after on the same machine."""
    from edge.app import build_station

    frames_dir = _write_frames(workdir / f"frames-{capture}-{defect_rate:g}", 40, 0, defect_rate, capture)
    if memory:
        _write_frames(workdir / "good", 16, 900, 0.0)
        data = yaml.safe_load(prompts.read_text())
        prompts = workdir / "prompts-memory.yaml"
        prompts.write_text(yaml.safe_dump({**data, "good": str(workdir / "good")}))
    cams = [{"name": f"cam{i}", "source": str(frames_dir), **({"tiles": tiles} if tiles else {})}
            for i in range(cameras)]
    grid = f"-{tiles['rows']}x{tiles['cols']}" if tiles else ""
    name = f"state{cameras}{grid}{'-memory' if memory else ''}{'-unbatched' if unbatched else ''}"
    cfg = parse_config({"cameras": cams, "model": {"bundle": str(bundle), **({"max_batch": 1} if unbatched else {})},
                        "prompts": str(prompts), "state_dir": str(workdir / name)}, "bench")

    def sample(running: Any) -> tuple[int, int, dict[str, float], float]:
        c, cams_now = running.counters, running.pipeline.cameras.values()
        captured = sum(cam.stats.frames for cam in cams_now)
        capture = sum(cam.stats.capture_s for cam in cams_now) / max(1, captured)  # per captured frame
        return (c.inspected, c.batches, {**c.stage_s, "publish": running.pipeline.publisher.tally.seconds,
                                          "capture_per_frame": capture}, time.perf_counter())

    with build_station(cfg) as running:
        running.run(duration=2.0)  # warm-up
        skipped_before = sum(cam.skipped for cam in running.station.cameras().values())
        before = sample(running)
        running.run(duration=seconds)
        after = sample(running)
        skipped = sum(cam.skipped for cam in running.station.cameras().values()) - skipped_before
        crops_per_frame = len(tiles_for(cfg.cameras[0], 640, 480))  # sim frames are 640x480
    frames = max(1, after[0] - before[0])
    batch = min(cfg.model.max_batch, max(1, round(frames / max(1, after[1] - before[1]) * crops_per_frame)))
    with ZeroShotModel(Bundle.open(bundle)) as model:  # alone on the machine, same batch size
        bare = bare_encoder_ms(model, min(batch, cfg.model.max_batch)) * crops_per_frame
    stage = {k: (after[2][k] - before[2][k]) * 1000 / frames for k in after[2] if k != "capture_per_frame"}
    stage["capture"] = after[2]["capture_per_frame"] * 1000
    own = stage["resize"] + stage["score"]
    fps = frames / (after[3] - before[3])
    return {"cameras": cameras, "tiles": tiles, "capture": capture, "memory": memory, "batched": not unbatched,
            "crops_per_frame": crops_per_frame, "frames": frames, "frames_per_s": round(fps, 2),
            "images_per_s": round(fps * crops_per_frame, 2), "mean_batch_crops": batch,
            "stage_ms_per_frame": {k: round(v, 3) for k, v in stage.items()},
            "bare_encoder_ms_per_frame": round(bare, 3),
            "overhead_vs_encode": round(own / max(1e-9, stage["encode"]), 4),
            "overhead_vs_bare": round((own + stage["encode"]) / max(1e-9, bare) - 1, 4),
            "encode_in_service_vs_bare": round(stage["encode"] / bare, 3), "skipped_frames": skipped}


def pipeline(bundle: Path, prompts: Path | None, cameras: list[int], seconds: float,
             tiles: list[dict[str, Any] | None], out: Path | None, memory: bool = False,
             unbatched: bool = False, defect_rate: float = 0.5, captures: tuple[str, ...] = ("jpeg",)
             ) -> dict[str, Any]:
    """Frames/s and per-stage time for each capture (``jpeg``, ``raw``), view (whole frame, tile grids) and camera
    count; with ``memory`` each runs again with a good-part memory (16 good parts of the same product), with
    ``unbatched`` again with one crop per encoder call (model.max_batch 1), so what each costs or gains is a ratio
    within one run.
    ``defect_rate``: of the replayed frames (a memory names each anomalous frame from a second, zoomed crop,
    so its cost grows with the share of defective parts)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if prompts is None:
            prompts = work / "prompts.yaml"
            prompts.write_text(FALLBACK_PROMPTS)
        runs: list[dict[str, Any]] = []
        for capture, view, n in itertools.product(captures, tiles, cameras):
            runs += _pipeline_runs(bundle, prompts, n, seconds, view, work, memory, unbatched, defect_rate, capture)
    image = Bundle.open(bundle).manifest.image
    report = {"benchmark": "pipeline", "machine": machine(), "bundle": str(bundle),
              "input": image.input, "resample": image.resample, "defect_rate": defect_rate,
              "backend": "onnxruntime", "seconds": seconds, "runs": runs}
    return _write(report, out)


def _pipeline_runs(bundle: Path, prompts: Path, cameras: int, seconds: float, view: dict[str, Any] | None,
                   work: Path, memory: bool, unbatched: bool, defect_rate: float, capture: str) -> list[dict[str, Any]]:
    """One configuration, then (when asked) again with a memory and again unbatched, with their ratios to it."""
    base = pipeline_run(bundle, prompts, cameras, seconds, view, work, defect_rate=defect_rate, capture=capture)
    runs = [base]
    if memory:
        runs.append(pipeline_run(bundle, prompts, cameras, seconds, view, work, memory=True,
                                 defect_rate=defect_rate, capture=capture))
        runs[-1]["vs_without_memory"] = round(runs[-1]["frames_per_s"] / max(1e-9, base["frames_per_s"]), 3)
    if unbatched and cameras > 1:
        runs.append(pipeline_run(bundle, prompts, cameras, seconds, view, work, unbatched=True,
                                 defect_rate=defect_rate, capture=capture))
        base["batched_vs_unbatched"] = round(base["images_per_s"] / max(1e-9, runs[-1]["images_per_s"]), 3)
    return runs


def _view_name(tiles: dict[str, Any] | None) -> str:
    return f"{tiles['rows']}x{tiles['cols']} + whole" if tiles else "whole"


def pipeline_table(report: dict[str, Any]) -> str:
    head = ("| capture | view | cameras | run | frames/s | image/s | capture ms | resize ms | encode ms | "
            "score+decide ms | memory ms | publish ms | bare encoder ms | overhead vs encode | overhead vs bare | "
            "skipped |")
    rows = [head, "|" + "---|" * 16]
    for r in report["runs"]:
        s = r["stage_ms_per_frame"]
        kind = "batched" if r["batched"] else "one crop per call"
        if r.get("memory"):
            kind = f"memory ({r['vs_without_memory']:.2f}x frames/s)"
        elif r.get("batched_vs_unbatched"):
            kind += f" ({r['batched_vs_unbatched']:.2f}x image/s of unbatched)"
        rows.append(f"| {r['capture']} | {_view_name(r['tiles'])} | {r['cameras']} | {kind} "
                    f"| {r['frames_per_s']} | {r['images_per_s']} "
                    f"| {s['capture']:.2f} | {s['resize']:.2f} | {s['encode']:.2f} | {s['score']:.2f} | "
                    f"{s.get('memory', 0.0):.2f} | {s['publish']:.2f} | {r['bare_encoder_ms_per_frame']:.2f} | "
                    f"{100 * r['overhead_vs_encode']:.1f} % | {100 * r['overhead_vs_bare']:.1f} % | "
                    f"{r['skipped_frames']} |")
    return "\n".join(rows) + (f"\n\nmachine: {report['machine']}; bundle input {report['input']}, resample "
                              f"{report['resample']}; {100 * report['defect_rate']:g} % defective frames; ms per "
                              "inspected frame (capture: per captured frame, on the cameras' threads; publish: the "
                              f"publisher's thread); {report['seconds']} s per run")


def memory_bench(bundle: Path, batch: int, patches: int, iterations: int, out: Path | None) -> dict[str, Any]:
    """The encoder alone vs the encoder plus the good-part memory's search, one batch of whole frames, with a
    memory of ``patches`` patch tokens (16 good parts and their moved copies, coreset to that size)."""
    from edge.app import one_blas_thread
    from edge.config import CameraConfig
    from edge.inspect.goodparts import build_view_memory
    from edge.inspect.memory import MemoryParams, frame_anomalies

    one_blas_thread()  # as the station runs it

    view = CameraConfig(name="bench", source="bench")
    good = [LineSimulator(seed=900, product=PRODUCT, defect_rate=0.0).frame(i).image for i in range(16)]
    frames = [LineSimulator(seed=0, product=PRODUCT).frame(i).image for i in range(batch)]
    with ZeroShotModel(Bundle.open(bundle)) as model:
        memory = build_view_memory(model, good, [f"g{i}" for i in range(16)], view,
                                   MemoryParams(max_patches=patches), "bench")
        spec = model.bundle.manifest.image
        pixels = model_input(frames, spec)
        model.embed_views(pixels)  # warm-up
        encode, search = [], []
        for _ in range(iterations):
            t0 = time.perf_counter()
            _, tokens = model.embed_views(pixels)
            t1 = time.perf_counter()
            frame_anomalies(memory, tokens[:, None], [[(0, 0, 640, 480)]] * batch, [(640, 480)] * batch)  # type: ignore[index]
            search.append(time.perf_counter() - t1)
            encode.append(t1 - t0)
    enc, mem = float(np.median(encode)) * 1000, float(np.median(search)) * 1000
    report = {"benchmark": "memory", "machine": machine(), "bundle": str(bundle), "batch": batch,
              "memory_patches": memory.patches, "encoder_ms": round(enc, 2), "memory_ms": round(mem, 2),
              "encoder_plus_memory_vs_encoder": round((enc + mem) / enc, 3)}
    return _write(report, out)


def _sample_payloads(n: int) -> list[tuple[int, str, str, str]]:
    base = {"schema": "edge-inspect/result/1", "ts": "2026-11-28T20:40:12.345Z", "station": "p/l/s",
            "camera": "cam1", "verdict": "ok", "category": "good", "score": 0.93,
            "scores": {"good": 0.93, "scratch": 0.03, "hole": 0.02, "crack": 0.01, "stain": 0.005, "missing": 0.005},
            "tile": None, "prompt_set": {"name": "demo-line", "version": "3c74413fa2989a89"},
            "model": {"name": "demo-clip", "precision": "fp32", "bundle": "1b2c3d4e5f6a7b8c", "backend": "onnxruntime"},
            "latency_ms": 41.2, "snapshot": None, "part_id": None, "replayed": False, "simulated": False, "truth": None}
    return [(i, f"id{i:08d}", "cam1", json.dumps({**base, "id": f"id{i:08d}", "seq": i})) for i in range(1, n + 1)]


def _bare_paho(port: int, rows: list[tuple[int, str, str, str]]) -> float:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(0.3)
    start = time.perf_counter()
    infos = [client.publish("bench/cam1/result", payload, qos=1) for _, _, _, payload in rows]
    for info in infos:
        info.wait_for_publish(30)
    elapsed = time.perf_counter() - start
    client.loop_stop()
    client.disconnect()
    return elapsed


def _with_outbox(port: int, rows: list[tuple[int, str, str, str]], folder: Path, synchronous: str) -> float:
    from edge.config import MqttConfig, StationConfig
    from edge.mqtt.link import MqttLink
    from edge.mqtt.outbox import Outbox
    from edge.mqtt.topics import Topics

    outbox = Outbox(folder / f"outbox-{synchronous}.sqlite", synchronous=synchronous)  # type: ignore[arg-type]
    link = MqttLink(MqttConfig(port=port), Topics("bench", StationConfig()), outbox,
                    lambda state: json.dumps({"state": state}), list, lambda m: None, lambda r: None).start()
    while not link.state.connected:
        time.sleep(0.01)
    start = time.perf_counter()
    for i in range(0, len(rows), 32):  # the service's publisher writes what is queued, in batches
        outbox.append(rows[i : i + 32])
        link.wake()
    while outbox.stats()["backlog"]:
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    link.stop()
    outbox.close()
    return elapsed


def mqtt_outbox(count: int, out: Path | None) -> dict[str, Any]:
    """Results/s to a loopback mosquitto: bare paho QoS 1 vs the outbox path."""
    from edge.mqtt.local_broker import LocalBroker

    rows = _sample_payloads(count)
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bare = _bare_paho(broker.port, rows)
        normal = _with_outbox(broker.port, rows, Path(tmp), "NORMAL")
        full = _with_outbox(broker.port, rows, Path(tmp), "FULL")
    report = {"benchmark": "mqtt", "machine": machine(), "results": count, "payload_bytes": len(rows[0][3]),
              "runs": [{"path": name, "seconds": round(s, 3), "results_per_s": round(count / s, 1),
                        "us_per_result": round(s * 1e6 / count, 1)}
                       for name, s in (("bare paho QoS 1", bare), ("outbox (synchronous=NORMAL)", normal),
                                       ("outbox (synchronous=FULL)", full))]}
    return _write(report, out)


def mqtt_table(report: dict[str, Any]) -> str:
    rows = ["| path | results/s | us per result |", "|---|---|---|"]
    rows += [f"| {r['path']} | {r['results_per_s']} | {r['us_per_result']} |" for r in report["runs"]]
    return "\n".join(rows) + (f"\n\n{report['results']} results of {report['payload_bytes']} bytes to a loopback "
                              f"mosquitto; machine: {report['machine']}")


VISION_ROLES = ("vision", "vision.fp16", "vision.int8", "vision.int8-cpu")


def _time_batches(encoder: Any, pixels: Any, iterations: int) -> Any:
    import numpy as np

    encoder.encode_images(pixels)  # warm-up
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        encoder.encode_images(pixels)
        times.append(time.perf_counter() - start)
    return np.array(times) * 1000


EagerRuns = Callable[[dict[int, Any], int, "int | None"], list[dict[str, Any]]]


def encoder(bundle: Path, batches: list[int], iterations: int, threads: int | None, out: Path | None,
            roles: list[str] | None = None, eager: EagerRuns | None = None,
            eager_name: str | None = None) -> dict[str, Any]:
    """Image/s and latency percentiles of each vision artifact alone (ONNX Runtime), per batch size.

    Each calibrated artifact's row carries its accuracy-gate numbers from the manifest, so a
    speed-up is never quoted without what it cost. With ``eager`` (the CLI passes PyTorch's
    timing from ``export/``: the runtime itself never imports torch), the checkpoint is timed
    on the same frames too.
    """

    opened = Bundle.open(bundle)
    roles = roles or [r for r in VISION_ROLES if r in opened.manifest.files]
    sim = LineSimulator(seed=0)
    frames = [sim.frame(i).image for i in range(max(batches))]
    runs = []
    base: dict[int, float] = {}
    pixels = {b: model_input(frames[:b], opened.manifest.image) for b in batches}
    for role in roles:
        entry = opened.manifest.files.get(role)
        if entry is None:
            raise ConfigError(f"{bundle}: no '{role}' artifact; the bundle has "
                              f"{', '.join(r for r in VISION_ROLES if r in opened.manifest.files)}.")
        gate = entry.calibration.gate if entry.calibration else None
        with OrtImageEncoder(opened.path(role), threads=threads, max_batch=max(batches)) as enc:
            for batch in batches:
                row = _row(enc, pixels[batch], iterations, base, reference=role == "vision")
                runs.append({"backend": "onnxruntime", "precision": entry.precision or "fp32", "artifact": entry.path,
                             "format": entry.calibration.format if entry.calibration else "fp32", **row,
                             "cosine_p1": round(gate.cosine_p1, 5) if gate else None,
                             "verdict_agreement": gate.verdict_agreement if gate else None,
                             "gate": _gate_word(gate)})
    trt_runs, trt_note = _tensorrt_runs(opened, pixels, iterations, base)
    runs += trt_runs
    if eager is not None:
        runs += _eager(eager, eager_name or "pytorch", pixels, iterations, threads, base)
    report = {"benchmark": "encoder", "machine": machine(), "bundle": str(bundle), "threads": threads,
              "tensorrt": trt_note or "timed", "runs": runs}
    return _write(report, out)


def _gate_word(gate: Any) -> str | None:
    """'passed', or 'FAILED (forced)' for an artifact written with --force: a failed gate is never quoted as a pass."""
    if gate is None:
        return None
    return "passed" if gate.passed else "FAILED (forced)"


def _row(encoder: Any, pixels: Any, iterations: int, base: dict[int, float], reference: bool) -> dict[str, Any]:
    """Time one encoder at one batch; the FP32 ONNX (``reference``) sets what 'vs fp32' divides by."""
    import numpy as np

    batch = len(pixels)
    t = _time_batches(encoder, pixels, iterations)
    ips = batch * iterations / (t.sum() / 1000)
    if reference:
        base[batch] = ips
    fp32 = base.get(batch)
    return {"batch": batch, "images_per_s": round(ips, 2), "vs_fp32": round(ips / fp32, 2) if fp32 else None,
            "p50_ms": round(float(np.percentile(t, 50)), 2), "p99_ms": round(float(np.percentile(t, 99)), 2)}


def _tensorrt_runs(bundle: Bundle, pixels: dict[int, Any], iterations: int,
                   base: dict[int, float]) -> tuple[list[dict[str, Any]], str | None]:
    """Rows for every fresh TensorRT engine of the bundle, or why there are none."""
    from edge.engines.manifest import engine_paths, mismatches, read_engine_manifest
    from edge.errors import EngineError

    try:
        from edge.encoders.cuda_memory import CudaDevice
        from edge.encoders.tensorrt import TrtImageEncoder
        from edge.engines.device import device_facts

        facts = device_facts()
    except EngineError as err:
        return [], f"not timed: {err}"
    runs: list[dict[str, Any]] = []
    for precision in ("fp16", "int8"):
        engine, manifest_path = engine_paths(bundle, "vision", precision)
        if not manifest_path.is_file():
            continue
        manifest = read_engine_manifest(manifest_path)
        if mismatches(manifest, bundle, facts, engine):
            continue
        device = CudaDevice.open()
        try:
            with TrtImageEncoder(engine, device, precision, None) as enc:
                for batch, px in pixels.items():
                    if batch <= enc.max_batch:
                        runs.append({"backend": "tensorrt", "precision": precision, "artifact": engine.name,
                                     "format": f"engine ({manifest.device.gpu_name})",
                                     **_row(enc, px, iterations, base, reference=False), "cosine_p1": None,
                                     "verdict_agreement": None, "gate": None})
        finally:
            device.close()
    return runs, None if runs else "no fresh engine: run 'edge-inspect build'"


def _eager(eager: EagerRuns, name: str, pixels: dict[int, Any], iterations: int, threads: int | None,
           base: dict[int, float]) -> list[dict[str, Any]]:
    runs = eager(pixels, iterations, threads)
    for r in runs:
        fp32 = base.get(r["batch"])
        r.update(backend="pytorch", artifact=name, format="eager fp32", cosine_p1=None, verdict_agreement=None,
                 gate=None, vs_fp32=round(r["images_per_s"] / fp32, 2) if fp32 else None)
    return runs


def encoder_table(report: dict[str, Any]) -> str:
    def f(x: Any, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    rows = ["| backend | artifact | format | batch | image/s | vs fp32 | p50 ms | p99 ms | gate cosine p1 | "
            "gate agreement | gate |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows += [f"| {r['backend']} | {Path(r['artifact']).name} | {r['format']} | {r['batch']} | "
             f"{r['images_per_s']} | {f(r['vs_fp32'], '.2f')}x | {r['p50_ms']} | {r['p99_ms']} | "
             f"{f(r['cosine_p1'], '.5f')} | {f(r['verdict_agreement'], '.2%')} | {r['gate'] or '-'} |"
             for r in report["runs"]]
    return "\n".join(rows) + f"\n\n{report['bundle']}; TensorRT {report['tensorrt']}; {report['machine']}"


def sim(url: str, frames: int, out: Path | None) -> dict[str, Any]:
    """Simulator frames/s on one core (OpenCV limited to one thread): can it feed a camera?"""
    import cv2

    from edge.sim import parse_sim_url, simulator

    p = parse_sim_url(url)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        line = simulator(p)
        line.frame(0)
        start = time.perf_counter()
        for i in range(1, frames + 1):
            line.frame(i)
        elapsed = time.perf_counter() - start
    finally:
        cv2.setNumThreads(threads)
    report = {"benchmark": "sim", "machine": machine(), "url": url, "size": list(p.size), "frames": frames,
              "frames_per_s": round(frames / elapsed, 1), "ms_per_frame": round(elapsed * 1000 / frames, 2)}
    return _write(report, out)
