"""Frame -> ``pixel_values``: the one preprocessing used by runtime and calibration.

Calibration imports these functions so that INT8 scales are computed on exactly the
tensors the device will feed (a second implementation would quietly shift them).

Two resize modes, recorded per bundle in ``ImageSpec.resize``:

* ``crop`` reproduces CLIP's recipe: shortest edge to ``size`` (aspect kept), then a centre
  crop. It matches how CLIP checkpoints were trained, but cuts away the ROI's borders, where
  a defect may sit.
* ``squash`` resizes the whole ROI to ``size`` x ``size``. Nothing is cut away, which is the
  better default for inspection: draw the ROI around the part and every pixel of it is seen.

Resampling when shrinking, per bundle in ``ImageSpec.resample``: ``area`` (INTER_AREA, close to
PIL's antialiased bicubic that the Hugging Face processors use; 1.48 ms for a 640x480 frame to
224 on the development machine), ``halve`` (2x2 box averages, OpenCV's fast path, while the frame
is at least twice the target, then bilinear: 0.21 ms and the same accuracy with ``evaluate``;
the default for new exports), ``pyramid`` (the same with pyrDown: 0.30 ms, blurs thin scratches)
or ``linear`` (0.16 ms, aliases fine periodic detail). README, "Preprocessing". Bicubic when
enlarging.

What the encoder gets (``model_input``): for bundles with ``image.input: uint8`` the resized BGR
frames themselves, [B, S, S, 3] uint8, written into one reusable buffer (the graph normalises);
for older bundles the normalised float ``pixel_values`` [B, 3, S, S].
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
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


def _resize(image: np.ndarray, width: int, height: int, resample: str = "area",
            dst: np.ndarray | None = None) -> np.ndarray:
    h, w = image.shape[:2]
    if width * height >= h * w:
        return cv2.resize(image, (width, height), dst=dst, interpolation=cv2.INTER_CUBIC)
    if resample == "area":
        return cv2.resize(image, (width, height), dst=dst, interpolation=cv2.INTER_AREA)
    if resample == "pyramid":
        while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
            image = cv2.pyrDown(image)  # a 5x5 Gaussian then every other pixel: antialiased halving
    elif resample == "halve":
        while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:  # 2x2 box averages: OpenCV's fast path
            image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (width, height), dst=dst, interpolation=cv2.INTER_LINEAR)


def _shortest_edge_crop(image: np.ndarray, size: int, resample: str) -> np.ndarray:
    h, w = image.shape[:2]
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(size * long / short)
    new_w, new_h = (new_long, size) if h <= w else (size, new_long)
    resized = _resize(image, new_w, new_h, resample)
    top = (new_h - size) // 2
    left = (new_w - size) // 2
    return resized[top : top + size, left : left + size]


def resize_for_model(image_bgr: np.ndarray, spec: ImageSpec, dst: np.ndarray | None = None) -> np.ndarray:
    """Resize (and for ``crop``, centre-crop) a BGR frame to the model's square input; into ``dst`` if given."""
    image_bgr = as_bgr(image_bgr)
    if spec.resize == "crop":
        out = _shortest_edge_crop(image_bgr, spec.size, spec.resample)
        if dst is None:
            return out
        dst[...] = out
        return dst
    return _resize(image_bgr, spec.size, spec.size, spec.resample, dst)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A grey [H, W] / [H, W, 1] or BGRA [H, W, 4] frame as BGR [H, W, 3]; BGR frames pass through untouched.
    (Cameras convert once when they read a frame and count it; this keeps every other caller safe too.)"""
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise ImageError(f"a frame of shape {image.shape}: expected 1, 3 or 4 channels; check the camera's pixel format.")


def resize_batch(images_bgr: Sequence[np.ndarray], spec: ImageSpec, out: np.ndarray | None = None) -> np.ndarray:
    """BGR frames (any sizes) -> uint8 [B, S, S, 3], each resized straight into its row of ``out`` (allocated
    when not given): no per-crop allocation on the line."""
    s = spec.size
    if out is None:
        out = np.empty((len(images_bgr), s, s, 3), dtype=np.uint8)
    for row, image in zip(out, images_bgr):
        resize_for_model(image, spec, dst=row)
    return out


def model_input(images_bgr: Sequence[np.ndarray], spec: ImageSpec,
                buffer: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
    """What the bundle's vision graph takes for these frames: uint8 ``images`` [B, S, S, 3] (``image.input:
    uint8``) or float ``pixel_values`` [B, 3, S, S]. ``buffer(n)`` lends the uint8 rows to resize into."""
    rows = buffer(len(images_bgr)) if buffer is not None else None
    batch = resize_batch(images_bgr, spec, rows)
    return batch if spec.input == "uint8" else normalize(batch, spec)


class BatchBuffer:
    """One reusable uint8 [N, S, S, 3] buffer per thread (the line's inference thread, the page's preview,
    a memory build): grown to the largest batch seen, never shrunk, never shared between threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._local = threading.local()

    def __call__(self, rows: int) -> np.ndarray:
        buf: np.ndarray | None = getattr(self._local, "buf", None)
        if buf is None or len(buf) < rows:
            buf = np.empty((rows, self.size, self.size, 3), dtype=np.uint8)
            self._local.buf = buf
        return buf[:rows]


def to_pixel_values(images_bgr: Sequence[np.ndarray], spec: ImageSpec) -> np.ndarray:
    """BGR uint8 frames (any sizes) -> normalised float32 ``pixel_values`` [B, 3, S, S], whatever the bundle's
    graph takes (PyTorch references and parity checks; encoders get ``model_input``)."""
    if len(images_bgr) == 0:
        return np.zeros((0, 3, spec.size, spec.size), dtype=np.float32)
    return normalize(resize_batch(images_bgr, spec), spec)


def normalize_constants(spec: ImageSpec) -> tuple[np.ndarray, np.ndarray]:
    """(scale, bias) float32 [3] in BGR order: ``pixel = x * scale + bias`` is (x / 255 - mean) / std. Training
    on a GPU applies the same two numbers there (export.finetune), so both paths normalise alike."""
    std = np.asarray(spec.std, dtype=np.float32)
    scale = (1.0 / (255.0 * std))[::-1]  # BGR order
    bias = (-np.asarray(spec.mean, dtype=np.float32) / std)[::-1]
    return np.ascontiguousarray(scale), np.ascontiguousarray(bias)


def normalize(batch_bgr: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Already resized BGR uint8 [B, S, S, 3] -> ``pixel_values`` [B, 3, S, S] float32.

    (x / 255 - mean) / std folded into one in-place multiply-add per channel, in BGR order,
    with the channel flip done by the final transpose: this runs once per frame.
    """
    scale, bias = normalize_constants(spec)
    x = batch_bgr.astype(np.float32)  # [B, S, S, 3] BGR
    x *= scale
    x += bias
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)[:, ::-1])  # [B, 3, S, S] RGB
