"""Which backend runs the encoders: the config asks, the device and the engines decide.

``onnxruntime`` always works. ``tensorrt`` needs TensorRT, pycuda, a GPU, engines that are
not stale for this bundle and device, and a passing self-test; without them it refuses
(or, with ``model.fallback: true``, falls back to ONNX Runtime and says so). ``auto``
takes TensorRT when all of that holds and ONNX Runtime otherwise, with the reason in the
note, which the service puts in its status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from edge.bundle import Bundle
from edge.config import ModelConfig
from edge.encoders.base import ImageEncoder, TextEncoder
from edge.encoders.onnxruntime import OrtImageEncoder, OrtTextEncoder
from edge.engines import selftest
from edge.engines.manifest import engine_paths, mismatches, read_engine_manifest, refuse
from edge.errors import EngineError

log = logging.getLogger("edge_inspect.backend")


@dataclass
class Encoders:
    image: ImageEncoder
    text: TextEncoder
    backend: str
    note: str | None = None  # why this backend, when it is not the one asked for


def onnxruntime_encoders(bundle: Bundle, cfg: ModelConfig, note: str | None = None) -> Encoders:
    from edge.model import artifact_roles

    vision, text = artifact_roles(bundle, cfg.precision)
    return Encoders(OrtImageEncoder(bundle.path(vision), precision=cfg.precision, threads=cfg.threads,
                                    max_batch=cfg.max_batch),
                    OrtTextEncoder(bundle.path(text), threads=cfg.threads), "onnxruntime", note)


def tensorrt_encoders(bundle: Bundle, cfg: ModelConfig) -> Encoders:
    """Open both engines after every check; EngineError naming the first that fails."""
    from edge.encoders.cuda_memory import CudaDevice
    from edge.encoders.tensorrt import TrtImageEncoder, TrtTextEncoder
    from edge.engines.device import device_facts

    if cfg.precision == "fp32":
        raise EngineError("model.precision fp32 has no TensorRT engine; use fp16 or int8 with TensorRT "
                          "(edge-inspect calibrate, then edge-inspect build), or model.backend: onnxruntime.")
    facts = device_facts()
    opened: list[Any] = []
    device = CudaDevice.open()
    try:
        for tower in ("vision", "text"):
            engine, manifest_path = engine_paths(bundle, tower, cfg.precision)
            if not manifest_path.is_file():
                raise EngineError(f"{engine}: no engine for {cfg.precision}; build it with "
                                  f"'edge-inspect build {bundle.root} --precision {cfg.precision}'.")
            manifest = read_engine_manifest(manifest_path)
            problems = mismatches(manifest, bundle, facts, engine, cfg.max_batch if tower == "vision" else None)
            if problems:
                raise refuse(manifest_path, problems, bundle, cfg.precision)
            cls = TrtImageEncoder if tower == "vision" else TrtTextEncoder
            opened.append(cls(engine, device, manifest.precision, cfg.max_batch if tower == "vision" else None))
        ref = selftest.reference(bundle)
        for tower, encoder in zip(("vision", "text"), opened):
            result = selftest.run(encoder, ref, tower, encoder.precision)
            log.info("%s", result.describe())
            if not result.passed:
                raise EngineError(f"{engine_paths(bundle, tower, cfg.precision)[0]}: {result.describe()}; rebuild "
                                  f"it, re-calibrate, or use model.backend: onnxruntime.")
        return Encoders(opened[0], opened[1], "tensorrt")
    except BaseException:
        for enc in opened:
            enc.close()
        device.close()
        raise


def open_encoders(bundle: Bundle, cfg: ModelConfig) -> Encoders:
    if cfg.backend == "onnxruntime" or (cfg.backend == "auto" and cfg.precision == "fp32"):
        return onnxruntime_encoders(bundle, cfg)  # fp32 has no engine: nothing to try, nothing to report
    try:
        return tensorrt_encoders(bundle, cfg)
    except EngineError as err:
        if cfg.backend == "tensorrt" and not cfg.fallback:
            raise
        note = f"TensorRT not used ({err}); running ONNX Runtime"
        # auto on a CPU-only box is the normal case (info); a fallback from an explicit 'tensorrt' is not
        log.log(logging.WARNING if cfg.backend == "tensorrt" else logging.INFO, "%s", note)
        return onnxruntime_encoders(bundle, cfg, note)
