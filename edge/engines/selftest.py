"""Self-test on load: an engine must reproduce the bundle's FP32 embeddings before it serves.

The reference is a few frames of the simulated line and a few prompts, encoded by the
FP32 ONNX with ONNX Runtime (on the device's CPU) and stored beside the engines, keyed by
the FP32 files' sha256. An engine that loads but computes something else - a precision
that overflowed, a plugin that differs on this JetPack - is caught here rather than by an
operator wondering about the verdicts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.bundle import Bundle
from edge.engines.manifest import ENGINE_DIR
from edge.scoring import l2_normalize

log = logging.getLogger("edge_inspect.engines")

REFERENCE_NAME = "selftest.npz"
THRESHOLDS = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.99}
PROMPTS = ("a photo of a flawless part", "a scratched metal part", "a part with a hole", "a rusty stain")


@dataclass(frozen=True)
class Reference:
    pixel_values: np.ndarray
    image_embeds: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray
    text_embeds: np.ndarray


@dataclass(frozen=True)
class SelfTest:
    tower: str
    precision: str
    min_cosine: float
    threshold: float

    @property
    def passed(self) -> bool:
        return self.min_cosine >= self.threshold

    def describe(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (f"self-test {verdict}: {self.tower} {self.precision} engine vs FP32 ONNX, min cosine "
                f"{self.min_cosine:.5f} (needs >= {self.threshold})")


def _compute(bundle: Bundle) -> Reference:
    from edge.encoders.onnxruntime import OrtImageEncoder, OrtTextEncoder
    from edge.preprocess import model_input
    from edge.sim import LineSimulator
    from edge.tokenizer import PromptTokenizer

    sim = LineSimulator(seed=4242)
    pixels = model_input([sim.frame(i).image for i in range(4)], bundle.manifest.image)
    ids, mask = PromptTokenizer(bundle.path("tokenizer"), bundle.manifest.text)(list(PROMPTS))
    with OrtImageEncoder(bundle.path("vision")) as vision, OrtTextEncoder(bundle.path("text")) as text:
        return Reference(pixels, vision.encode_images(pixels), ids, mask, text.encode_texts(ids, mask))


def _key(bundle: Bundle) -> str:
    files = bundle.manifest.files
    return f"{files['vision'].sha256}:{files['text'].sha256}"


def reference(bundle: Bundle) -> Reference:
    """The stored reference when it belongs to this bundle's FP32 files, else a fresh one (saved if possible)."""
    path = bundle.root / ENGINE_DIR / REFERENCE_NAME
    try:
        with np.load(path) as data:
            if str(data["key"]) == _key(bundle):
                return Reference(*(np.asarray(data[k]) for k in
                                   ("pixel_values", "image_embeds", "input_ids", "attention_mask", "text_embeds")))
    except (OSError, KeyError, ValueError):
        pass
    ref = _compute(bundle)
    try:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, key=np.array(_key(bundle)), **ref.__dict__)
        tmp.replace(path)
    except OSError as err:  # a read-only bundle still gets its self-test, computed each start
        log.info("self-test reference not saved (%s); it is recomputed at each start", err)
    return ref


def run(encoder: Any, ref: Reference, tower: str, precision: str) -> SelfTest:
    """Encode the reference inputs with ``encoder`` and compare with the FP32 embeddings."""
    if tower == "vision":
        got, want = encoder.encode_images(ref.pixel_values), ref.image_embeds
    else:
        got, want = encoder.encode_texts(ref.input_ids, ref.attention_mask), ref.text_embeds
    if got.shape != want.shape:
        return SelfTest(tower, precision, -1.0, THRESHOLDS[precision])
    cos = np.sum(l2_normalize(got) * l2_normalize(want), axis=1)
    return SelfTest(tower, precision, float(cos.min()), THRESHOLDS[precision])
