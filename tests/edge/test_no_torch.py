"""The device runtime imports with the base install alone: no torch, no transformers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers', 'tensorrt', 'pycuda'):
            raise ImportError('blocked for this test: ' + name)
        return None
sys.meta_path.insert(0, Block())
import edge
names = [m.name for m in pkgutil.walk_packages(edge.__path__, 'edge.') if not m.name.endswith('__main__')]
for name in names:
    importlib.import_module(name)
from edge.cli.main import build_parser
build_parser()
print(len(names))
"""


def test_edge_imports_without_torch() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 10  # every module of edge/ was imported


def test_edge_sources_never_import_torch() -> None:
    offenders = [
        str(p) for p in (ROOT / "edge").rglob("*.py")
        for line in p.read_text().splitlines()
        if line.strip().startswith(("import torch", "from torch", "import transformers", "from transformers"))
    ]
    assert offenders == []
