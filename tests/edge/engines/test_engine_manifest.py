"""Stale and foreign engines are refused before TensorRT ever sees them (no GPU needed).

The engine files here are random bytes with a matching manifest: what is tested is the
bookkeeping around an engine (hashes, versions, GPU, profile), which needs no TensorRT.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.bundle import Bundle
from edge.engines.device import l4t_release
from edge.engines.manifest import (
    DeviceFacts,
    EngineManifest,
    Profile,
    engine_paths,
    mismatches,
    read_engine_manifest,
    refuse,
    write_engine_manifest,
)
from edge.errors import EngineError
from edge.hashing import sha256_file
from tests.calibration.conftest import copy_bundle

ORIN = DeviceFacts(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7", l4t_release="36.3.0")


def fake_engine(bundle: Bundle, precision: str = "fp16", tower: str = "vision", role: str = "vision") -> Path:
    """Random bytes standing in for a serialized engine, with a manifest that matches them."""
    engine, manifest_path = engine_paths(bundle, tower, precision)
    engine.parent.mkdir(exist_ok=True)
    engine.write_bytes(os.urandom(4096))
    entry = bundle.manifest.files[role]
    write_engine_manifest(manifest_path, EngineManifest(
        role=role, tower=tower, precision=precision, onnx_path=entry.path, onnx_sha256=entry.sha256,  # type: ignore[arg-type]
        device=ORIN, profile=Profile(input="pixel_values", min=(1, 3, 40, 40), opt=(8, 3, 40, 40), max=(16, 3, 40, 40)),
        workspace_mib=1024, engine_path=engine.name, engine_sha256=sha256_file(engine), engine_bytes=4096,
        build_seconds=61.0, built_at="2026-11-28T12:00:00+00:00", builder="test"))
    return manifest_path


@pytest.fixture
def bundle(tiny_bundles: dict[str, Path], tmp_path: Path) -> Bundle:
    return Bundle.open(copy_bundle(tiny_bundles["clip"], tmp_path / "clip"))


def _problems(bundle: Bundle, device: DeviceFacts | None = ORIN, max_batch: int | None = None) -> list[str]:
    path = engine_paths(bundle, "vision", "fp16")
    return mismatches(read_engine_manifest(path[1]), Bundle.open(bundle.root), device, path[0], max_batch)


def test_a_fresh_engine_has_no_problems(bundle: Bundle) -> None:
    fake_engine(bundle)
    assert _problems(bundle) == [] and _problems(bundle, max_batch=16) == []


@pytest.mark.parametrize("device, want", [
    (ORIN.model_copy(update={"tensorrt_version": "10.7.0"}), "built with TensorRT 10.3.0, this device has 10.7.0"),
    (ORIN.model_copy(update={"gpu_name": "NVIDIA RTX A2000", "compute_capability": "8.6"}),
     "built for Orin (sm 8.7), this device is NVIDIA RTX A2000 (sm 8.6)"),
    (ORIN.model_copy(update={"l4t_release": "36.4.0"}), "built on Jetson Linux 36.3.0, this device runs 36.4.0"),
])
def test_an_engine_from_another_tensorrt_gpu_or_jetpack_is_refused(bundle: Bundle, device: DeviceFacts,
                                                                    want: str) -> None:
    fake_engine(bundle)
    assert _problems(bundle, device) == [want]


def test_an_engine_from_an_older_export_is_refused(bundle: Bundle) -> None:
    path = fake_engine(bundle)
    old = read_engine_manifest(path)  # as if built before the bundle was re-exported or re-calibrated
    write_engine_manifest(path, old.model_copy(update={"onnx_sha256": "0" * 64}))
    (problem,) = _problems(bundle)
    assert "built from another vision.onnx (sha256 000000000000..." in problem
    assert "re-exported or re-calibrated" in problem


def test_truncated_damaged_and_missing_engines_are_refused(bundle: Bundle) -> None:
    fake_engine(bundle)
    engine = engine_paths(bundle, "vision", "fp16")[0]
    data = engine.read_bytes()
    engine.write_bytes(data[:1000])
    assert _problems(bundle) == ["vision.fp16.engine has 1000 bytes, 4096 were written (truncated or replaced)"]
    engine.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    assert _problems(bundle) == ["vision.fp16.engine does not match its sha256 (damaged or replaced)"]
    engine.unlink()
    assert _problems(bundle) == ["vision.fp16.engine is missing"]


def test_a_batch_larger_than_the_profile_is_refused_with_the_rebuild_command(bundle: Bundle) -> None:
    path = fake_engine(bundle)
    problems = _problems(bundle, max_batch=32)
    assert problems == ["model.max_batch 32 exceeds the engine's profile (max batch 16)"]
    message = str(refuse(path, problems, bundle, "fp16"))
    assert "\n" not in message and f"edge-inspect build {bundle.root} --precision fp16" in message


def test_a_broken_engine_manifest_is_one_line(bundle: Bundle) -> None:
    path = fake_engine(bundle)
    path.write_text('{"format_version": 1, "role": "vision"}')
    with pytest.raises(EngineError, match="invalid engine manifest at 'tower'; rebuild the engine"):
        read_engine_manifest(path)


def test_jetson_linux_release_is_read_from_nv_tegra_release(tmp_path: Path) -> None:
    f = tmp_path / "nv_tegra_release"
    f.write_text("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, DATE: Mon May 6\n")
    assert l4t_release(f) == "36.3.0"
    f.write_text("# R35 (release), REVISION: 5.0, GCID: 35550185, BOARD: t186ref\n")
    assert l4t_release(f) == "35.5.0"
    assert l4t_release(tmp_path / "absent") is None
    f.write_text("garbage")
    assert l4t_release(f) is None
