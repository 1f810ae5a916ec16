"""Shared fixtures: tiny CLIP and SigLIP checkpoints built from configs, and their bundles.

The checkpoints are real ``save_pretrained`` folders with a trained byte-level BPE
tokenizer and an image-processor config, so they take exactly the code paths that a
downloaded checkpoint takes. Their sizes are deliberately odd (non-power-of-two widths,
different text and vision widths) so that nothing can depend on one shape.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli

CAPTIONS = [
    "a photo of a scratched metal bracket", "a flawless clean part", "a hole in the plastic cover",
    "rust stain on the steel plate", "a cracked casting", "missing screw on the circuit board",
    "an intact, perfect widget", "dent near the left edge", "small scratch in the centre",
] * 20

TINY = {
    # family: (TowerSizes kwargs, crop?)  CLIP uses its centre-crop recipe, SigLIP squashes
    "clip": (dict(image_size=40, patch_size=8, vision_width=48, vision_layers=2, vision_heads=2,
                  text_width=40, text_layers=2, text_heads=2, context_length=20, embed_dim=24,
                  vocab_size=400), True),
    "siglip": (dict(image_size=48, patch_size=12, vision_width=36, vision_layers=2, vision_heads=3,
                    text_width=44, text_layers=2, text_heads=2, context_length=18, embed_dim=36,
                    vocab_size=380), False),
}


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from export.checkpoint_build import TowerSizes, build_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    return {
        family: build_checkpoint(root / f"tiny-{family}", family, TowerSizes(**sizes),  # type: ignore[arg-type]
                                 CAPTIONS, crop=crop, seed=7)
        for family, (sizes, crop) in TINY.items()
    }


@pytest.fixture(scope="session")
def tiny_bundles(
    tiny_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Bundles exported through the CLI, as a user would."""
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for family, ckpt in tiny_checkpoints.items():
        run_cli("export", str(ckpt), "--out", str(root / family), "--quiet")
        out[family] = root / family
    return out


@pytest.fixture(scope="session")
def demo_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The committed demo checkpoints, exported once per session. Copy before writing into them."""
    from export.demo_models import recipe

    root = tmp_path_factory.mktemp("demo-bundles")
    for family in recipe.FAMILIES:
        run_cli("export", str(recipe.folder(family)), "--out", str(root / family), "--quiet")
    return {f: root / f for f in recipe.FAMILIES}


@pytest.fixture(params=["clip", "siglip"])
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)
