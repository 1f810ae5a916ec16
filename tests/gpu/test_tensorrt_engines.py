"""TensorRT on a real GPU: build both precisions for a demo bundle, self-test, parity, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.bundle import Bundle
from edge.config import ModelConfig
from edge.encoders.onnxruntime import OrtImageEncoder
from edge.encoders.select import open_encoders
from edge.engines.manifest import engine_paths, read_engine_manifest
from edge.errors import EngineError
from edge.preprocess import model_input
from edge.scoring import l2_normalize
from export.parity import natural_frames
from tests.calibration.conftest import calibrate, copy_bundle
from tests.helpers import run_cli

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def built(tensorrt: Any, demo_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = copy_bundle(demo_bundles["clip"], tmp_path_factory.mktemp("trt") / "clip")
    calibrate(bundle, "--precision", "fp16")
    calibrate(bundle, "--precision", "int8")
    for precision in ("fp16", "int8"):
        run_cli("build", str(bundle), "--precision", precision, "--max-batch", "16", "--quiet")
    return bundle


@pytest.mark.parametrize("precision, min_cos", [("fp16", 0.999), ("int8", 0.99)])
def test_engines_match_onnxruntime(built: Path, precision: str, min_cos: float) -> None:
    bundle = Bundle.open(built)
    manifest = read_engine_manifest(engine_paths(bundle, "vision", precision)[1])
    assert manifest.profile.max_batch == 16 and manifest.role == f"vision.{precision}"
    enc = open_encoders(bundle, ModelConfig(bundle=built, precision=precision, backend="tensorrt"))  # type: ignore[arg-type]
    assert enc.backend == "tensorrt" and enc.note is None
    # > max batch: chunked; uint8 frames, as the bundle's graph (and so the engine) takes them
    pixels = model_input(natural_frames(21, seed=0), bundle.manifest.image)
    with OrtImageEncoder(built / "vision.onnx") as ref:
        want = l2_normalize(ref.encode_images(pixels))
    got = l2_normalize(enc.image.encode_images(pixels))
    enc.image.close()
    enc.text.close()
    assert got.shape == want.shape and float(np.min(np.sum(got * want, axis=1))) >= min_cos


def test_check_says_fresh_and_a_recalibrated_bundle_makes_the_engine_stale(built: Path, tmp_path: Path) -> None:
    assert run_cli("build", str(built), "--check", "--precision", "fp16").code == 0
    stale = copy_bundle(built, tmp_path / "stale")
    calibrate(stale, "--precision", "int8", "--method", "entropy")  # a new vision.int8.onnx
    lines = [json.loads(x) for x in run_cli("build", str(stale), "--check", "--precision", "int8", expect=6).out
             .splitlines()]
    assert any("built from another vision.int8.onnx" in p for line in lines for p in line.get("problems", []))
    with pytest.raises(EngineError, match="rebuild with 'edge-inspect build"):
        open_encoders(Bundle.open(stale), ModelConfig(bundle=stale, precision="int8", backend="tensorrt"))


def test_a_batch_larger_than_the_profile_is_refused(built: Path) -> None:
    with pytest.raises(EngineError, match="model.max_batch 32 exceeds the engine's profile"):
        open_encoders(Bundle.open(built), ModelConfig(bundle=built, precision="fp16", backend="tensorrt",
                                                      max_batch=32))


def test_a_truncated_engine_is_refused_not_crashed(built: Path, tmp_path: Path) -> None:
    copy = copy_bundle(built, tmp_path / "cut")
    engine = engine_paths(Bundle.open(copy), "vision", "fp16")[0]
    engine.write_bytes(engine.read_bytes()[:1000])
    enc = open_encoders(Bundle.open(copy), ModelConfig(bundle=copy, precision="fp16"))  # auto: falls back
    assert enc.backend == "onnxruntime" and "truncated" in (enc.note or "")


def test_device_check_script(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "device.json"
    result = run_cli("selftest", "--bundle", str(built), "--batches", "1,8", "--iterations", "5", "--json", str(out),
                     "--quiet")
    report = json.loads(out.read_text())
    assert {c["precision"] for c in report["checks"]} == {"fp16", "int8"}
    assert all(c["selftest_passed"] for c in report["checks"]) and "| tensorrt | int8 | 8 |" in result.out
