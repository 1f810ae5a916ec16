"""Export through the CLI: parity with PyTorch, dynamic batch, determinism, the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edge.bundle import Bundle
from edge.contract import DEFAULT_OPSET, IMAGE_EMBEDS, IMAGES, PATCH_EMBEDS, TEXT_EMBEDS
from edge.preprocess import normalize, resize_batch
from edge.tokenizer import PromptTokenizer
from export.checkpoint import load_checkpoint
from export.parity import cosine_rows, natural_frames
from export.towers import PatchSpec, TextTower, VisionTower
from tests.helpers import one_line_error, run_cli


def test_manifest_records_what_the_runtime_needs(tiny_bundles: dict[str, Path], family: str) -> None:
    m = Bundle.open(tiny_bundles[family]).manifest
    assert m.family == family
    assert (m.logit_bias is None) == (family == "clip")
    assert m.image.resize == ("crop" if family == "clip" else "squash")
    assert set(m.files) == {"vision", "text", "tokenizer"}
    assert m.files["vision"].parity_min_cosine is not None and m.files["vision"].parity_min_cosine >= 0.9999
    assert m.text.context_length == onnx.load(str(tiny_bundles[family] / "text.onnx")).graph.input[0] \
        .type.tensor_type.shape.dim[1].dim_value


def test_onnx_matches_pytorch_at_several_batch_sizes(
    tiny_checkpoints: dict[str, Path], tiny_bundles: dict[str, Path], family: str
) -> None:
    ckpt = load_checkpoint(str(tiny_checkpoints[family]))
    bundle = Bundle.open(tiny_bundles[family])
    vision = ort.InferenceSession(str(bundle.path("vision")))
    text = ort.InferenceSession(str(bundle.path("text")))
    tok = PromptTokenizer(bundle.path("tokenizer"), bundle.manifest.text)
    for batch in (1, 3, 7):  # traced at 2: every other size proves the batch axis is dynamic
        images = resize_batch(natural_frames(batch, seed=batch + 100), bundle.manifest.image)  # uint8 BGR
        pixels = normalize(images, bundle.manifest.image)  # what PyTorch takes: the float path, in Python
        with torch.no_grad():
            ref = VisionTower(ckpt.model)(torch.from_numpy(pixels)).numpy()
        got, patches = vision.run([IMAGE_EMBEDS.name, PATCH_EMBEDS.name], {IMAGES.name: images})
        assert got.shape == (batch, bundle.manifest.embed_dim)
        assert cosine_rows(ref, got).min() >= 0.9999
        info = bundle.manifest.patches  # the patch tokens: same pass, same parity
        assert info is not None and patches.shape == (batch, info.grid[0] * info.grid[1], info.dim)
        with torch.no_grad():
            _, ref_p = VisionTower(ckpt.model, PatchSpec(info.source, tuple(info.layers)))(torch.from_numpy(pixels))
        assert cosine_rows(ref_p.reshape(-1, info.dim).numpy(), patches.reshape(-1, info.dim)).min() >= 0.9999
        ids, _ = tok([f"prompt number {i} with Mixed Case!" for i in range(batch)])
        with torch.no_grad():
            ref_t = TextTower(ckpt.model)(torch.from_numpy(ids)).numpy()
        got_t = text.run([TEXT_EMBEDS.name], {"input_ids": ids})[0]
        assert cosine_rows(ref_t, got_t).min() >= 0.9999


@pytest.mark.parametrize("choice, source, layers", [("auto", "layers", [1]), ("joint", "joint", [-1]),
                                                    ("0,2", "layers", [0, 2]), ("none", None, None)])
def test_patch_token_choices(choice: str, source: str | None, layers: list[int] | None,
                             tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    run_cli("export", str(tiny_checkpoints["siglip"]), "--out", str(tmp_path / "b"), "--quiet", "--patch-layers",
            choice)
    bundle = Bundle.open(tmp_path / "b")
    outputs = [o.name for o in ort.InferenceSession(str(bundle.path("vision"))).get_outputs()]
    if source is None:
        assert bundle.manifest.patches is None and outputs == [IMAGE_EMBEDS.name]
        return
    info = bundle.manifest.patches
    assert info is not None and (info.source, info.layers, info.grid) == (source, layers, (4, 4))
    assert outputs == [IMAGE_EMBEDS.name, PATCH_EMBEDS.name]
    dim = 36 if choice == "joint" else 36 * len(layers)  # tiny SigLIP: width 36 = embed dim
    assert info.dim == dim


def test_bad_patch_layers_are_one_line(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    line = one_line_error(run_cli("export", str(tiny_checkpoints["clip"]), "--out", str(tmp_path / "b"),
                                  "--patch-layers", "7", expect=4))
    assert "layers must be within 0..2" in line


def test_graph_uses_opset_17_and_explicit_attention(tiny_bundles: dict[str, Path], family: str) -> None:
    model = onnx.load(str(tiny_bundles[family] / "vision.onnx"))
    opset = {o.domain: o.version for o in model.opset_import}[""]
    assert opset == DEFAULT_OPSET
    ops = {n.op_type for n in model.graph.node}
    assert "Softmax" in ops and "MatMul" in ops  # attention spelled out as math
    assert not ops & {"Attention", "MultiHeadAttention", "ScaledDotProductAttention"}
    assert "LayerNormalization" in ops  # one op, as TensorRT 10 keeps it


def test_export_is_deterministic(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    hashes = []
    for name in ("a", "b"):
        run_cli("export", str(tiny_checkpoints["siglip"]), "--out", str(tmp_path / name), "--quiet")
        files = Bundle.open(tmp_path / name).manifest.files
        hashes.append({k: v.sha256 for k, v in files.items()})
    assert hashes[0] == hashes[1]


def test_export_shows_progress_and_prints_summary(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("export", str(tiny_checkpoints["clip"]), "--out", str(tmp_path / "b"))
    assert "[6/6] writing bundle.json: done" in result.err
    assert "min cosine" in result.err
    assert '"family": "clip"' in result.out


def test_refuses_to_overwrite_without_force(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("operator notes")
    result = run_cli("export", str(tiny_checkpoints["clip"]), "--out", str(out), "--quiet", expect=4)
    assert "--force" in result.err
    assert (out / "keep.txt").read_text() == "operator notes"


@pytest.mark.parametrize("resize", ["crop", "squash"])
def test_resize_override_is_recorded(tiny_checkpoints: dict[str, Path], tmp_path: Path, resize: str) -> None:
    run_cli("export", str(tiny_checkpoints["clip"]), "--out", str(tmp_path / resize), "--quiet",
            "--resize", resize)
    assert Bundle.open(tmp_path / resize).manifest.image.resize == resize


def test_parity_gate_refuses_a_graph_that_differs(
    tiny_checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tower that the ONNX does not reproduce (here: the reference is perturbed) is refused
    and no bundle is written."""
    import export.bundle_export as be

    real = be._torch_fn

    def perturbed(module: object, output: int = 0):  # type: ignore[no-untyped-def]
        fn = real(module, output)
        return lambda x: fn(x) + 0.05 * np.random.default_rng(0).standard_normal(fn(x).shape)

    monkeypatch.setattr(be, "_torch_fn", perturbed)
    result = run_cli("export", str(tiny_checkpoints["clip"]), "--out", str(tmp_path / "b"), "--quiet",
                     expect=4)
    assert "does not match PyTorch" in result.err and "missed by" in result.err
    assert not (tmp_path / "b").exists()
    assert not list(tmp_path.iterdir())  # no temp folder left behind either
