"""Bad checkpoints: one line naming the path and the fix, exit code 4, no traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers import one_line_error, run_cli


def _export(src: Path, out: Path) -> str:
    return one_line_error(run_cli("export", str(src), "--out", str(out), "--quiet", expect=4))


def test_missing_checkpoint(tmp_path: Path) -> None:
    line = _export(tmp_path / "nope", tmp_path / "out")
    assert "nope" in line and "local Hugging Face cache" in line


def test_unsupported_architecture(tmp_path: Path) -> None:
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps(
        {"model_type": "bert", "architectures": ["BertModel"]}))
    line = _export(tmp_path / "bert", tmp_path / "out")
    assert "BertModel" in line and "CLIPModel" in line and "SiglipModel" in line


def test_checkpoint_without_tokenizer(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    ckpt = shutil.copytree(tiny_checkpoints["clip"], tmp_path / "ckpt")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (ckpt / name).unlink(missing_ok=True)
    line = _export(ckpt, tmp_path / "out")
    assert "tokenizer" in line and "save_pretrained" in line


def test_checkpoint_without_preprocessor_config(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    ckpt = shutil.copytree(tiny_checkpoints["siglip"], tmp_path / "ckpt")
    (ckpt / "preprocessor_config.json").unlink()
    line = _export(ckpt, tmp_path / "out")
    assert "preprocessor_config.json" in line


def test_checkpoint_without_weights(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    ckpt = shutil.copytree(tiny_checkpoints["siglip"], tmp_path / "ckpt")
    (ckpt / "model.safetensors").unlink()
    line = _export(ckpt, tmp_path / "out")
    assert "no weight files" in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    import pytest

    from edge.errors import ExportError

    with pytest.raises(ExportError):
        run_cli("--debug", "export", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
