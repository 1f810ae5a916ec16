"""uint8 frames in, normalisation in the graph: the folding is exact, new bundles take uint8, old ones keep
float, and a bundle and an artifact that disagree on the input are refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edge.bundle import Bundle, ImageSpec
from edge.contract import IMAGES, PIXEL_VALUES
from edge.encoders.onnxruntime import OrtImageEncoder
from edge.errors import BundleError, EngineError
from edge.model import ZeroShotModel
from edge.preprocess import model_input, normalize, to_pixel_values
from export.parity import natural_frames
from export.uint8_input import Uint8Images, folded_conv
from tests.helpers import run_cli

SPEC = ImageSpec(size=32, mean=(0.48, 0.46, 0.41), std=(0.27, 0.26, 0.28), resize="squash")


@pytest.mark.parametrize("bias", [True, False])
def test_folded_patch_conv_computes_the_float_path(bias: bool) -> None:
    """conv(normalise(x) in RGB) == folded conv(x in BGR, 0..255), CLIP's bias-free conv and SigLIP's alike."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 16, 8, stride=8, bias=bias)
    images = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    want = conv(torch.from_numpy(normalize(images, SPEC)))
    got = folded_conv(conv, SPEC)(torch.from_numpy(images).permute(0, 3, 1, 2).float())
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)


class _Tower(nn.Module):
    """export's VisionTower shape: ``model.vision_model.embeddings.patch_embedding``, here with padding (which the
    folding must refuse: a padded border sees zeros in the float graph)."""

    def __init__(self, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 8, stride=8, padding=padding)
        self.model: Any = nn.Module()
        self.model.vision_model = nn.Module()
        self.model.vision_model.embeddings = nn.Module()
        self.model.vision_model.embeddings.patch_embedding = self.conv

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.vision_model.embeddings.patch_embedding(pixel_values).flatten(1)


@pytest.mark.parametrize("padding, folded", [(0, True), (2, False)])
def test_wrapper_folds_where_it_can_and_computes_the_same_where_it_cannot(padding: int, folded: bool) -> None:
    torch.manual_seed(1)
    tower = _Tower(padding).eval()
    wrapped = Uint8Images(tower, SPEC).eval()
    assert wrapped.folded is folded
    images = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        want = tower(torch.from_numpy(normalize(images, SPEC)))
        got = wrapped(torch.from_numpy(images))
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert tower.model.vision_model.embeddings.patch_embedding is tower.conv  # the reference untouched


def test_new_bundles_take_uint8_and_start_with_transpose_and_cast(tiny_bundles: dict[str, Path], family: str) -> None:
    bundle = Bundle.open(tiny_bundles[family])
    assert (bundle.manifest.image.input, bundle.manifest.image.resample) == ("uint8", "halve")
    graph = onnx.load(str(bundle.path("vision"))).graph
    (inp,) = graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    s = bundle.manifest.image.size
    assert inp.name == IMAGES.name and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert dims == ["batch", s, s, 3]

    def users(tensor: str) -> list[onnx.NodeProto]:
        return [n for n in graph.node if tensor in n.input]

    (transpose,) = users(inp.name)
    (cast,) = users(transpose.output[0])
    assert (transpose.op_type, cast.op_type) == ("Transpose", "Cast")
    reached, frontier = set(), [cast]  # from the cast to the patch convolution: no arithmetic, it is folded
    while frontier:
        for user in users(frontier.pop().output[0]):
            reached.add(user.op_type)
            if user.op_type in ("Cast", "Identity"):
                frontier.append(user)
    assert "Conv" in reached and not reached & {"Mul", "Add", "Sub", "Div"}


def test_float_input_bundle_gives_the_same_embeddings(tiny_checkpoints: dict[str, Path],
                                                      tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    """--float-input keeps the old graph; both paths through the runtime agree to parity."""
    run_cli("export", str(tiny_checkpoints["siglip"]), "--out", str(tmp_path / "f"), "--quiet", "--float-input")
    old, new = Bundle.open(tmp_path / "f"), Bundle.open(tiny_bundles["siglip"])
    assert old.manifest.image.input == "float32"
    assert ort.InferenceSession(str(old.path("vision"))).get_inputs()[0].name == PIXEL_VALUES.name
    frames = natural_frames(5, seed=3)
    with ZeroShotModel(old) as a, ZeroShotModel(new) as b:
        x, y = a.embed_images(frames), b.embed_images(frames)
        assert a.inputs(frames).dtype == np.float32 and b.inputs(frames).dtype == np.uint8
    assert float((x * y).sum(axis=1).min()) >= 0.9999


def test_a_bundle_from_before_the_option_keeps_its_identity_and_float_input(tiny_bundles: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    """bundle.json without image.input / image.resample means float input and area resampling, and the bundle's
    hash (results' model.bundle, the caches) is what it was before those fields existed."""
    root = tmp_path / "b"
    shutil.copytree(tiny_bundles["clip"], root)
    data = json.loads((root / "bundle.json").read_text())
    data["image"].update(input="float32", resample="area")
    (root / "bundle.json").write_text(json.dumps(data))
    explicit = Bundle.open(root, verify_hashes=False)
    del data["image"]["input"], data["image"]["resample"]
    (root / "bundle.json").write_text(json.dumps(data))
    legacy = Bundle.open(root, verify_hashes=False)
    assert (legacy.manifest.image.input, legacy.manifest.image.resample) == ("float32", "area")
    assert legacy.hash == explicit.hash != Bundle.open(tiny_bundles["clip"]).hash


def test_an_artifact_that_takes_another_input_is_refused_in_one_line(tiny_checkpoints: dict[str, Path],
                                                                      tiny_bundles: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    run_cli("export", str(tiny_checkpoints["clip"]), "--out", str(tmp_path / "f"), "--quiet", "--float-input")
    new = Bundle.open(tiny_bundles["clip"])
    with pytest.raises(BundleError, match="takes uint8 images.*float32 pixel_values.*rebuild it") as err:
        ZeroShotModel(new, image_encoder=OrtImageEncoder(tmp_path / "f" / "vision.onnx"))
    assert "\n" not in str(err.value)
    frames = natural_frames(2, seed=4)
    with OrtImageEncoder(new.path("vision")) as enc:  # and the encoder itself, fed the other kind
        assert enc.input_dtype == "uint8"
        with pytest.raises(EngineError, match="takes uint8 images .* was given float32"):
            enc.encode_images(to_pixel_values(frames, new.manifest.image))
        assert enc.encode_images(model_input(frames, new.manifest.image)).shape[0] == 2

