"""Runtime preprocessing (OpenCV) against the Hugging Face image processors (PIL)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from edge.bundle import Bundle, ImageSpec
from edge.errors import ImageError
from edge.preprocess import load_image, resize_for_model, to_pixel_values
from export.checkpoint import load_checkpoint
from export.parity import cosine_rows, natural_frames
from export.towers import VisionTower


def _hf_pixels(ckpt_dir: Path, frames: list[np.ndarray]) -> np.ndarray:
    from transformers import AutoImageProcessor

    proc = AutoImageProcessor.from_pretrained(str(ckpt_dir), use_fast=False)
    pil = [Image.fromarray(f[..., ::-1].copy()) for f in frames]
    return np.asarray(proc(images=pil, return_tensors="np")["pixel_values"], dtype=np.float32)


def test_embeddings_match_hf_processor_on_non_square_images(
    tiny_checkpoints: dict[str, Path], tiny_bundles: dict[str, Path], family: str
) -> None:
    frames = natural_frames(6, seed=5)
    assert all(f.shape[0] != f.shape[1] for f in frames)
    spec = Bundle.open(tiny_bundles[family]).manifest.image
    ours = to_pixel_values(frames, spec)
    theirs = _hf_pixels(tiny_checkpoints[family], frames)
    assert ours.shape == theirs.shape
    tower = VisionTower(load_checkpoint(str(tiny_checkpoints[family])).model)
    with torch.no_grad():
        a = tower(torch.from_numpy(ours)).numpy()
        b = tower(torch.from_numpy(theirs)).numpy()
    assert cosine_rows(a, b).min() >= 0.999


def _spec(resize: str) -> ImageSpec:
    return ImageSpec(size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize=resize)  # type: ignore[arg-type]


def test_squash_keeps_the_border_and_crop_cuts_it() -> None:
    frame = np.full((100, 300, 3), 128, np.uint8)
    frame[:, :20] = (0, 0, 255)  # a red defect at the left border (BGR)
    squashed = resize_for_model(frame, _spec("squash"))
    cropped = resize_for_model(frame, _spec("crop"))
    assert squashed.shape == cropped.shape == (32, 32, 3)
    assert squashed[:, 0, 2].mean() > 200  # still red
    assert cropped[:, 0, 2].mean() < 140  # cut away


def test_channel_order_and_normalisation() -> None:
    frame = np.zeros((10, 10, 3), np.uint8)
    frame[..., 0] = 255  # blue in BGR
    px = to_pixel_values([frame], _spec("squash"))
    assert px.shape == (1, 3, 32, 32) and px.dtype == np.float32
    assert np.allclose(px[0, 2], 1.0) and np.allclose(px[0, 0], -1.0)  # RGB: blue is channel 2


def test_load_image_rejects_non_images(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ImageError, match="notes.png: not a readable image"):
        load_image(bad)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    good = tmp_path / "ok.png"
    cv2.imwrite(str(good), np.full((5, 7, 3), 9, np.uint8))
    assert load_image(good).shape == (5, 7, 3)
