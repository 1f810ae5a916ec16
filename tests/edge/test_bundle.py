"""Bundle manifest validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge.bundle import Bundle
from edge.errors import BundleError


def test_invalid_manifest_names_the_field(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = shutil.copytree(tiny_bundles["clip"], tmp_path / "b")
    data = json.loads((bundle / "bundle.json").read_text())
    data["family"] = "blip"
    (bundle / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="'family'"):
        Bundle.open(bundle)


def test_missing_file(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = shutil.copytree(tiny_bundles["clip"], tmp_path / "b")
    (bundle / "text.onnx").unlink()
    with pytest.raises(BundleError, match="text.onnx: listed in bundle.json as 'text' but missing"):
        Bundle.open(bundle)


def test_hash_identifies_content(tiny_bundles: dict[str, Path]) -> None:
    a, b = Bundle.open(tiny_bundles["clip"]), Bundle.open(tiny_bundles["siglip"])
    assert a.hash != b.hash and a.hash == Bundle.open(tiny_bundles["clip"]).hash
