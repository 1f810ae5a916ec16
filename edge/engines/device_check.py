"""``edge-inspect selftest --backend tensorrt``: prove a device, end to end, in one command.

Builds the engines a bundle's calibrated ONNX allow (fp16, int8), runs each engine's
self-test, compares its embeddings with ONNX Runtime on frames of the simulated line,
and times image/s with p50/p99 latency per precision and batch size; prints a table and
writes JSON. This is the script a user runs on a new Jetson before trusting it, and the
one a maintainer runs on the first device after a TensorRT update.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench import machine
from edge.bundle import Bundle
from edge.encoders.onnxruntime import OrtImageEncoder
from edge.engines import selftest
from edge.engines.build import BuildOptions, build
from edge.engines.manifest import engine_paths
from edge.preprocess import model_input
from edge.scoring import l2_normalize
from edge.sim import LineSimulator


def _time(encode: Any, pixels: np.ndarray, iterations: int) -> np.ndarray:
    encode(pixels)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        encode(pixels)
        times.append(time.perf_counter() - start)
    return np.array(times) * 1000


def run(root: Path, batches: list[int], iterations: int, out: Path | None, quiet: bool = False) -> dict[str, Any]:
    from edge.encoders.cuda_memory import CudaDevice
    from edge.encoders.tensorrt import TrtImageEncoder

    bundle = Bundle.open(root)
    precisions = [p for p in ("fp16", "int8") if f"vision.{p}" in bundle.manifest.files]
    if not precisions:
        from edge.errors import BundleError

        raise BundleError(f"{root}: no fp16 or int8 ONNX to build engines from; run 'edge-inspect calibrate' on "
                          "the workstation first.")
    frames = [LineSimulator(seed=77).frame(i).image for i in range(max(batches))]
    pixels = model_input(frames, bundle.manifest.image)
    with OrtImageEncoder(bundle.path("vision")) as ort_enc:
        reference = l2_normalize(ort_enc.encode_images(pixels))
        rows = [_row("onnxruntime", "fp32", b, _time(ort_enc.encode_images, pixels[:b], iterations), None)
                for b in batches]
    checks = []
    for precision in precisions:
        build(root, BuildOptions(precision=precision, max_batch=max(batches)), quiet=quiet)
        device = CudaDevice.open()
        try:
            with TrtImageEncoder(engine_paths(bundle, "vision", precision)[0], device, precision, None) as enc:
                test = selftest.run(enc, selftest.reference(bundle), "vision", precision)
                got = l2_normalize(enc.encode_images(pixels))
                cos = float(np.min(np.sum(got * reference, axis=1)))
                checks.append({"precision": precision, "selftest_min_cosine": test.min_cosine,
                               "selftest_passed": test.passed, "vs_onnxruntime_min_cosine": cos})
                rows += [_row("tensorrt", precision, b, _time(enc.encode_images, pixels[:b], iterations), cos)
                         for b in batches]
        finally:
            device.close()
    report = {"benchmark": "device-check", "machine": machine(), "bundle": str(root), "checks": checks, "runs": rows}
    if out is not None:
        out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _row(backend: str, precision: str, batch: int, t: np.ndarray, cos: float | None) -> dict[str, Any]:
    return {"backend": backend, "precision": precision, "batch": batch,
            "images_per_s": round(batch * len(t) / (t.sum() / 1000), 2),
            "p50_ms": round(float(np.percentile(t, 50)), 2), "p99_ms": round(float(np.percentile(t, 99)), 2),
            "min_cosine_vs_onnxruntime": None if cos is None else round(cos, 5)}


def table(report: dict[str, Any]) -> str:
    rows = ["| backend | precision | batch | image/s | p50 ms | p99 ms | min cosine vs ORT |",
            "|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        cos = r["min_cosine_vs_onnxruntime"]
        rows.append(f"| {r['backend']} | {r['precision']} | {r['batch']} | {r['images_per_s']} | {r['p50_ms']} | "
                    f"{r['p99_ms']} | {'-' if cos is None else cos} |")
    checks = "; ".join(f"{c['precision']} self-test {'passed' if c['selftest_passed'] else 'FAILED'} "
                       f"({c['selftest_min_cosine']:.5f})" for c in report["checks"])
    return "\n".join(rows) + f"\n\n{checks}\n{report['bundle']}; {report['machine']}"
