"""Calibrated copies of the bundles: calibration writes into a bundle, so the session's stay untouched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import CliResult, run_cli

SIM = "sim://line?seed=7"
# small enough for CI, large enough for a meaningful gate: 24 calibration and 96 hold-out frames
# (the fewest whose agreement bound can reach the default 0.97), each cut into the demo cameras'
# 2x2 tiles plus the whole frame (120 / 480 crops)
SMALL = ("--calib-images", "24", "--holdout-images", "96", "--tiles", "2x2")


def copy_bundle(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def calibrate(bundle: Path, *args: str, expect: int = 0) -> CliResult:
    return run_cli("calibrate", str(bundle), "--images", SIM, "--quiet", *SMALL, *args, expect=expect)


def report(bundle: Path) -> dict:
    return json.loads((bundle / "calibration" / "report.json").read_text())


def _calibrated(bundles: dict[str, Path], root: Path, *args: str) -> dict[str, Path]:
    """--force: whether a gate passes depends on how this CPU quantizes (VNNI or not); the tests check
    what the gate measured and that its verdict follows from it, never that it passed here."""
    out = {}
    for family, src in bundles.items():
        out[family] = copy_bundle(src, root / family)
        calibrate(out[family], *args, "--force")
    return out


@pytest.fixture(scope="session")
def int8_demo(demo_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both demo models calibrated to TensorRT INT8 with the default method and gate."""
    return _calibrated(demo_bundles, tmp_path_factory.mktemp("int8-demo"), "--precision", "int8")


@pytest.fixture(scope="session")
def cpu_int8_demo(demo_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both demo models calibrated to CPU INT8 (the fastest ONNX Runtime format that passes)."""
    return _calibrated(demo_bundles, tmp_path_factory.mktemp("cpu-int8-demo"), "--precision", "int8",
                       "--target", "cpu")


@pytest.fixture(scope="session")
def fp16_demo(demo_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = copy_bundle(demo_bundles["clip"], tmp_path_factory.mktemp("fp16-demo") / "clip")
    calibrate(bundle, "--precision", "fp16", "--force")
    return bundle


def gate_follows_its_numbers(gate: object) -> bool:
    """The recorded verdict is what the recorded numbers and thresholds give."""
    g = gate  # GateRecord
    return bool(g.passed == (g.cosine_p1 >= g.min_cosine and g.agreement_lower_bound >= g.min_agreement)  # type: ignore[attr-defined]
                or g.passed is False and g.forced)  # type: ignore[attr-defined]
