"""Frame -> ``pixel_values``: the one preprocessing used by runtime and calibration.

Calibration imports these functions so that INT8 scales are computed on exactly the
tensors the device will feed (a second implementation would quietly shift them).

Two resize modes, recorded per bundle in ``ImageSpec.resize``:

* ``crop`` reproduces CLIP's recipe: shortest edge to ``size`` (aspect kept), then a centre
  crop. It matches how CLIP checkpoints were trained, but cuts away the ROI's borders, where
  a defect may sit.
* ``squash`` resizes the whole ROI to ``size`` x ``size``. Nothing is cut away, which is the
  better default for inspection: draw the ROI around the part and every pixel of it is seen.

Resampling: area averaging when shrinking (close to PIL's antialiased bicubic that the
Hugging Face processors use), bicubic when enlarging.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.bundle import ImageSpec
from edge.errors import ImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as BGR uint8 [H, W, 3], or raise a one-line ImageError."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file; check the path.")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageError(
            f"{path}: not a readable image (expected PNG, JPEG, BMP, TIFF or WebP); "
            "replace or remove the file."
        )
    return image


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = width * height < image.shape[0] * image.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interp)


def _shortest_edge_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(size * long / short)
    new_w, new_h = (new_long, size) if h <= w else (size, new_long)
    resized = _resize(image, new_w, new_h)
    top = (new_h - size) // 2
    left = (new_w - size) // 2
    return resized[top : top + size, left : left + size]


def resize_for_model(image_bgr: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Resize (and for ``crop``, centre-crop) a BGR frame to the model's square input."""
    if spec.resize == "crop":
        return _shortest_edge_crop(image_bgr, spec.size)
    return _resize(image_bgr, spec.size, spec.size)


def to_pixel_values(images_bgr: Sequence[np.ndarray], spec: ImageSpec) -> np.ndarray:
    """BGR uint8 frames (any sizes) -> normalised float32 ``pixel_values`` [B, 3, S, S]."""
    if len(images_bgr) == 0:
        return np.zeros((0, 3, spec.size, spec.size), dtype=np.float32)
    return normalize(np.stack([resize_for_model(img, spec) for img in images_bgr]), spec)


def normalize(batch_bgr: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Already resized BGR uint8 [B, S, S, 3] -> ``pixel_values`` [B, 3, S, S] float32.

    (x / 255 - mean) / std folded into one in-place multiply-add per channel, in BGR order,
    with the channel flip done by the final transpose: this runs once per frame.
    """
    std = np.asarray(spec.std, dtype=np.float32)
    scale = (1.0 / (255.0 * std))[::-1]  # BGR order
    bias = (-np.asarray(spec.mean, dtype=np.float32) / std)[::-1]
    x = batch_bgr.astype(np.float32)  # [B, S, S, 3] BGR
    x *= scale
    x += bias
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)[:, ::-1])  # [B, 3, S, S] RGB
