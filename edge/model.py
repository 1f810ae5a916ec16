"""A bundle opened for zero-shot use: preprocessing, tokenizer, both encoders, scoring.

This is the object the CLI's ``classify`` and the service share, so that a verdict seen on
the command line is the verdict the line produces.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import TracebackType

import numpy as np

from edge.bundle import Bundle, Precision
from edge.contract import VISION_INPUT_WORDS
from edge.encoders.base import ImageEncoder, TextEncoder
from edge.encoders.onnxruntime import OrtImageEncoder, OrtTextEncoder
from edge.errors import BundleError
from edge.preprocess import BatchBuffer, model_input
from edge.scoring import category_probs, l2_normalize
from edge.tokenizer import PromptTokenizer

log = logging.getLogger("edge_inspect.model")


def artifact_roles(bundle: Bundle, precision: Precision) -> tuple[str, str]:
    """The (vision, text) file roles ONNX Runtime runs for ``precision``; refuses stale or missing ones.

    For int8 the CPU artifact (``vision.int8-cpu``, in the format fastest on x86) wins over
    TensorRT's Q/DQ graph, which ONNX Runtime can run but slowly. A calibrated artifact
    records the sha256 of the FP32 file it was made from; one made from another export (a
    bundle re-exported, a file copied in from elsewhere) is refused rather than run next to
    a text tower it was never checked with.
    """
    files = bundle.manifest.files
    if precision == "fp32":
        vision, text = "vision", "text"
    elif precision == "fp16":
        vision, text = "vision.fp16", "text.fp16" if "text.fp16" in files else "text"
    else:
        cpu = "vision.int8-cpu" in files
        vision = "vision.int8-cpu" if cpu else "vision.int8"
        text = "text.int8-cpu" if cpu and "text.int8-cpu" in files else "text"
        if not cpu and vision in files:
            log.warning("%s: no CPU int8 artifact; running TensorRT's Q/DQ graph on ONNX Runtime, which is slow on "
                        "x86 (make one with 'edge-inspect calibrate --precision int8 --target cpu')", bundle.root)
    if vision not in files:
        target = " --target cpu" if precision == "int8" else ""
        raise BundleError(
            f"{bundle.root}: no {precision} vision model in the bundle; make it with 'edge-inspect calibrate "
            f"{bundle.root} --images DIR --precision {precision}{target}', or set model.precision: fp32."
        )
    for role in (vision, text):
        _check_derived(bundle, role, precision)
    return vision, text


def _check_derived(bundle: Bundle, role: str, precision: str) -> None:
    files = bundle.manifest.files
    record = files[role].calibration
    if record is None:
        return
    source = role.split(".")[0]
    if record.derived_from != files[source].sha256:
        raise BundleError(
            f"{bundle.root / files[role].path}: calibrated from a different {source}.onnx than this bundle's; "
            f"re-run 'edge-inspect calibrate --precision {precision}' on this bundle."
        )
    if record.gate is not None and not record.gate.passed:
        log.warning("%s was written with --force although it failed the accuracy gate (cosine p1 %.4f, "
                    "agreement %.1f%%)", files[role].path, record.gate.cosine_p1, 100 * record.gate.verdict_agreement)


class ZeroShotModel:
    """Owns the encoders of one bundle; use it in a ``with`` block."""

    def __init__(
        self,
        bundle: Bundle,
        image_encoder: ImageEncoder | None = None,
        text_encoder: TextEncoder | None = None,
        threads: int | None = None,
        precision: Precision = "fp32",
    ) -> None:
        self.bundle = bundle
        self.tokenizer = PromptTokenizer(bundle.path("tokenizer"), bundle.manifest.text)
        if image_encoder is None or text_encoder is None:
            vision, text = artifact_roles(bundle, precision)
            image_encoder = image_encoder or OrtImageEncoder(bundle.path(vision), precision=precision, threads=threads)
            text_encoder = text_encoder or OrtTextEncoder(bundle.path(text), threads=threads)
        self.image_encoder: ImageEncoder = image_encoder
        self.text_encoder: TextEncoder = text_encoder
        spec = bundle.manifest.image
        takes = getattr(image_encoder, "input_dtype", spec.input)
        if takes != spec.input:
            image_encoder.close()
            text_encoder.close()
            what = VISION_INPUT_WORDS
            raise BundleError(
                f"{bundle.root}: bundle.json says its vision model takes {what.get(spec.input, spec.input)}, but the "
                f"{image_encoder.name} {image_encoder.precision} artifact takes {what.get(takes, takes)}: it was made "
                f"from another export; rebuild it from this bundle ('edge-inspect build {bundle.root}' for engines, "
                "'edge-inspect calibrate' for calibrated files) or re-export the bundle.")
        self._buffer = BatchBuffer(spec.size)

    def inputs(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """BGR frames (any sizes) -> what the vision graph takes, resized straight into this thread's reusable
        batch buffer (page-locked on TensorRT, so the batch is copied to the GPU once). The array is reused
        by this thread's next call: encode it before preparing another batch."""
        spec = self.bundle.manifest.image
        lend = getattr(self.image_encoder, "input_buffer", None)

        def rows(n: int) -> np.ndarray:
            pinned = lend(n, spec.size) if lend is not None else None
            return pinned if pinned is not None else self._buffer(n)

        return model_input(images_bgr, spec, rows)

    def embed_pixels(self, pixel_values: np.ndarray) -> np.ndarray:
        """The graph's input (``inputs``) -> unit-length image embeddings [B, D]."""
        return l2_normalize(self.image_encoder.encode_images(pixel_values))

    def embed_views(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The graph's input -> (unit image embeddings [B, D], patch tokens [B, P, Dp] or None), one pass."""
        image, patches = self.image_encoder.encode_views(pixel_values)
        return l2_normalize(image), patches

    @property
    def has_patches(self) -> bool:
        return bool(self.image_encoder.has_patches)

    def embed_images(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """BGR frames of any size -> unit-length image embeddings [B, D]."""
        return self.embed_pixels(self.inputs(images_bgr))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Prompts -> unit-length text embeddings [T, D]."""
        ids, mask = self.tokenizer(texts)
        return l2_normalize(self.text_encoder.encode_texts(ids, mask))

    def probs(self, image_embeds: np.ndarray, text_embeds: np.ndarray) -> np.ndarray:
        """Category probabilities [B, C] with the family's own scoring."""
        m = self.bundle.manifest
        return category_probs(image_embeds, text_embeds, m.family, m.logit_scale, m.logit_bias)

    def close(self) -> None:
        self.image_encoder.close()
        self.text_encoder.close()

    def __enter__(self) -> ZeroShotModel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
