"""The edge device's own install: the base package in a fresh virtualenv (no torch, no transformers, no onnx).

The README's install table says the device runs ``pip install -c constraints.txt .``; this is that
install, made from a copy of the tracked source, in a real virtualenv, run as a user would: the demo
works from the shipped bundle, and a workstation command says in one line which extra it needs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "out")


@pytest.mark.slow
def test_the_device_install_runs_the_demo_and_names_the_extras_it_lacks(tmp_path: Path) -> None:
    src, venv = tmp_path / "src", tmp_path / "venv"
    shutil.copytree(ROOT, src, ignore=SKIP)  # not the checkout itself: a build writes build/ and egg-info there
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(src / "constraints.txt"), str(src)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    found = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.util as u; print([m for m in "
                            "('torch', 'transformers', 'onnx', 'safetensors') if u.find_spec(m)])"],
                           capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"  # really the device install
    cli = str(venv / "bin" / "edge-inspect")

    demo = subprocess.run([cli, "demo", "--cameras", "1", "--frames", "3", "--good", "4", "--quiet",
                           "--workdir", str(tmp_path / "demo")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert re.search(r"\d+ results: verdict accuracy", demo.stdout)
    assert "exporting" not in demo.stderr and "Traceback" not in demo.stderr  # the shipped bundle, as it is

    bundle, images = src / "export" / "demo_models" / "bundles" / "demo-clip", tmp_path / "demo"
    for args, extra in ((["export", str(src / "export" / "demo_models" / "demo-clip"), "--out", str(tmp_path / "b")],
                         "export"),
                        (["calibrate", str(bundle), "--images", str(images), "--precision", "int8"], "calibration"),
                        (["finetune", "--init", "clip", "--data", str(images), "--out", str(tmp_path / "f")],
                         "export")):
        refused = subprocess.run([cli, *args], capture_output=True, text=True, timeout=120)
        assert refused.returncode == 10, (args[0], refused.stderr)  # the README's code for a missing extra
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pip install -c constraints.txt 'edge-inspect[{extra}]'" in lines[0], refused.stderr

    units = subprocess.run([cli, "install-systemd", "--dry-run"], capture_output=True, text=True, timeout=60)
    assert units.returncode == 0, units.stderr  # the templates come with the package, not only with a checkout
    assert f"ExecStart={venv / 'bin'}/edge-inspect run" in units.stdout.replace(str(venv.resolve()), str(venv))
