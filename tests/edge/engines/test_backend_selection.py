"""Backend choice, self-test and the build command on a machine without TensorRT (this one).

Nothing is mocked: TensorRT really is absent here, which is exactly the case these tests
cover; the GPU side is in tests/gpu/ (marked, skipped without a GPU).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import Bundle
from edge.config import ModelConfig, parse_config
from edge.encoders.onnxruntime import OrtImageEncoder, OrtTextEncoder
from edge.encoders.select import open_encoders
from edge.engines import selftest
from edge.errors import EngineError
from tests.calibration.conftest import calibrate, copy_bundle
from tests.edge.engines.test_engine_manifest import fake_engine
from tests.helpers import one_line_error, run_cli

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                                reason="these tests cover machines without TensorRT; this one has it (see tests/gpu)")


@pytest.fixture(scope="module")
def fp16_bundle(tiny_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = copy_bundle(tiny_bundles["clip"], tmp_path_factory.mktemp("sel") / "clip")
    calibrate(bundle, "--precision", "fp16")
    return bundle


def _cfg(bundle: Path, **model: object) -> ModelConfig:
    return ModelConfig(bundle=bundle, **model)  # type: ignore[arg-type]


def test_auto_runs_onnxruntime_and_says_why(fp16_bundle: Path) -> None:
    enc = open_encoders(Bundle.open(fp16_bundle), _cfg(fp16_bundle, precision="fp16"))
    assert enc.backend == "onnxruntime" and enc.image.precision == "fp16"
    assert enc.note is not None and "TensorRT is not installed" in enc.note


def test_tensorrt_asked_for_and_absent_refuses_in_one_line(fp16_bundle: Path) -> None:
    with pytest.raises(EngineError, match="TensorRT is not installed .* or set model.backend: onnxruntime"):
        open_encoders(Bundle.open(fp16_bundle), _cfg(fp16_bundle, precision="fp16", backend="tensorrt"))
    enc = open_encoders(Bundle.open(fp16_bundle), _cfg(fp16_bundle, precision="fp16", backend="tensorrt",
                                                       fallback=True))
    assert enc.backend == "onnxruntime" and "TensorRT not used" in (enc.note or "")


def test_service_status_degraded_only_when_tensorrt_was_asked_for(fp16_bundle: Path, tmp_path: Path) -> None:
    from edge.app import build_station
    from export.captions import DEMO_PROMPTS_FILE

    def status(backend: str) -> dict:
        cfg = parse_config({"cameras": [{"name": "c", "source": "sim://line?seed=1&frames=1&live=0&size=160x120"}],
                            "model": {"bundle": str(fp16_bundle), "precision": "fp16", "backend": backend,
                                      "fallback": True},
                            "prompts": str(DEMO_PROMPTS_FILE), "state_dir": str(tmp_path / backend),
                            "station": {"site": "s", "line": "l", "station": "st"}}, "test")
        with build_station(cfg, sinks=[]) as svc:
            return svc.status.snapshot()

    degraded, auto = status("tensorrt"), status("auto")
    assert degraded["state"] == "degraded" and any("encoder: TensorRT not used" in r for r in degraded["reasons"])
    assert auto["state"] == "online" and "TensorRT is not installed" in auto["backend_note"]


def test_selftest_reference_is_stored_keyed_and_catches_a_wrong_encoder(fp16_bundle: Path) -> None:
    bundle = Bundle.open(fp16_bundle)
    ref = selftest.reference(bundle)
    stored = fp16_bundle / "engines" / "selftest.npz"
    assert stored.is_file() and ref.pixel_values.shape[0] == 4
    with np.load(stored) as data:  # read back, not recomputed: a marked copy comes back marked
        saved = {k: np.asarray(data[k]) for k in data.files}
    np.savez(stored, **(saved | {"image_embeds": saved["image_embeds"] * 2}))
    assert np.array_equal(selftest.reference(bundle).image_embeds, ref.image_embeds * 2)
    np.savez(stored, **(saved | {"key": np.array("another bundle")}))  # ... unless it belongs to other files
    assert np.array_equal(selftest.reference(bundle).image_embeds, ref.image_embeds)
    with OrtImageEncoder(fp16_bundle / "vision.fp16.onnx") as half, OrtTextEncoder(fp16_bundle / "text.fp16.onnx") as t:
        assert selftest.run(half, ref, "vision", "fp16").passed
        assert selftest.run(t, ref, "text", "fp16").passed
    # an engine computing something else: same shapes, so the cosine decides
    noisy = selftest.Reference(ref.pixel_values, ref.image_embeds + np.random.default_rng(0).normal(
        0, 0.5, ref.image_embeds.shape).astype(np.float32), ref.input_ids, ref.attention_mask, ref.text_embeds)
    with OrtImageEncoder(fp16_bundle / "vision.onnx") as full:
        result = selftest.run(full, noisy, "vision", "int8")
    assert not result.passed and "self-test FAILED" in result.describe() and "needs >= 0.99" in result.describe()


def test_build_without_tensorrt_is_one_line(fp16_bundle: Path) -> None:
    line = one_line_error(run_cli("build", str(fp16_bundle), "--precision", "fp16", expect=10))  # a missing extra
    assert "TensorRT is not installed" in line and "pip install -c constraints.txt 'edge-inspect[tensorrt]'" in line
    assert "model.backend" not in line  # a station's way out, not a build's


def test_build_int8_without_the_qdq_onnx_names_the_calibrate_command(fp16_bundle: Path) -> None:
    line = one_line_error(run_cli("build", str(fp16_bundle), "--precision", "int8", expect=3))
    assert "no vision.int8.onnx" in line and "edge-inspect calibrate" in line and "--precision int8" in line


@pytest.mark.parametrize("args, want", [(["--max-batch", "0"], "--max-batch 0: must be 1 to 256"),
                                        (["--opt-batch", "32"], "--opt-batch 32: must be 1 to --max-batch (16)"),
                                        (["--workspace", "8"], "--workspace 8: at least 64 MiB")])
def test_build_options_are_checked_before_tensorrt(fp16_bundle: Path, args: list[str], want: str) -> None:
    assert want in one_line_error(run_cli("build", str(fp16_bundle), "--precision", "fp16", *args, expect=2))


def test_build_check_reports_each_engine(fp16_bundle: Path, tmp_path: Path) -> None:
    bundle = copy_bundle(fp16_bundle, tmp_path / "b")
    fake_engine(Bundle.open(bundle), "fp16", "vision", "vision.fp16")
    result = run_cli("build", str(bundle), "--check", expect=6)
    lines = [json.loads(line) for line in result.out.splitlines()]
    engines = {Path(r["engine"]).name: r for r in lines if "engine" in r}
    assert set(engines) == {"vision.fp16.engine", "text.fp16.engine", "vision.int8.engine", "text.int8.engine"}
    assert engines["vision.fp16.engine"]["problems"] == [] and engines["text.fp16.engine"]["problems"] == ["not built"]
    assert "TensorRT is not installed" in lines[-1]["note"]  # what --check could not check here
