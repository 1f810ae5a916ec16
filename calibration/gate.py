"""The accuracy gate: a reduced-precision artifact against FP32, on images it was not calibrated on.

Three views, because each one alone can be fooled:

* image-embedding cosine (mean, 1st percentile, min) - the p1 is gated, since a mean of
  0.995 can hide the 1 % of frames where the model sees something else entirely;
* zero-shot verdict agreement with the prompt set the line will run - the verdict
  (ok / ng / uncertain, and which defect) is what reaches the MES, and a small embedding
  drift near a threshold flips it;
* the largest category-score difference, which shows how close the next flip is.

The ONNX Runtime CPU latency ratio is reported beside them, so that an INT8 graph slower
than FP32 (a known trap) is seen before it ships.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.bundle import BundleManifest, GateRecord
from edge.encoders.onnxruntime import OrtImageEncoder
from edge.inspect.decision import decide
from edge.prompts import PromptSet
from edge.scoring import category_probs, l2_normalize


@dataclass(frozen=True)
class Thresholds:
    min_cosine: float
    min_agreement: float


DEFAULTS = {"fp16": Thresholds(0.999, 0.99), "int8": Thresholds(0.99, 0.99)}


@dataclass
class Comparison:
    """Per-image numbers behind a :class:`GateRecord`, kept for the report and its plot."""

    cosines: np.ndarray  # [N]
    score_diffs: np.ndarray  # [N, C] candidate - reference
    ref_verdicts: list[tuple[str, str]]
    cand_verdicts: list[tuple[str, str]]
    text_cosines: np.ndarray | None = None  # [T], when the text tower was converted too

    def record(self, t: Thresholds, latency_ratio: float | None) -> GateRecord:
        agree = float(np.mean([a == b for a, b in zip(self.ref_verdicts, self.cand_verdicts)]))
        p1 = float(np.percentile(self.cosines, 1))
        text_ok = self.text_cosines is None or float(self.text_cosines.min()) >= t.min_cosine
        return GateRecord(
            passed=bool(p1 >= t.min_cosine and agree >= t.min_agreement and text_ok),
            images=len(self.cosines), cosine_mean=float(self.cosines.mean()), cosine_p1=p1,
            cosine_min=float(self.cosines.min()), verdict_agreement=agree,
            max_score_diff=float(np.abs(self.score_diffs).max()) if self.score_diffs.size else 0.0,
            latency_ratio=latency_ratio, min_cosine=t.min_cosine, min_agreement=t.min_agreement,
        )


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=1)


def verdicts(image: np.ndarray, text: np.ndarray, prompts: PromptSet, m: BundleManifest) -> tuple[np.ndarray, list]:
    """Scores [N, C] and (verdict, deciding category) per image, with the service's own rules."""
    scores = category_probs(l2_normalize(image), l2_normalize(text), m.family, m.logit_scale, m.logit_bias)
    names = [c.name for c in prompts.categories]
    out = []
    for row in scores:
        d = decide(dict(zip(names, row.tolist())), prompts)
        out.append((d.verdict, d.category if d.verdict != "ok" else ""))
    return scores, out


def compare(ref_image: np.ndarray, cand_image: np.ndarray, ref_text: np.ndarray, cand_text: np.ndarray,
            prompts: PromptSet, manifest: BundleManifest, text_cosines: np.ndarray | None = None) -> Comparison:
    ref_scores, ref_v = verdicts(ref_image, ref_text, prompts, manifest)
    cand_scores, cand_v = verdicts(cand_image, cand_text, prompts, manifest)
    return Comparison(cosines(ref_image, cand_image), cand_scores - ref_scores, ref_v, cand_v, text_cosines)


def encode(path: Path, pixels: np.ndarray, threads: int | None = None) -> np.ndarray:
    with OrtImageEncoder(path, threads=threads, max_batch=16) as enc:
        return enc.encode_images(pixels)


def seconds_per_image(path: Path, pixels: np.ndarray, batch: int = 8, repeats: int = 3) -> float:
    """Best-of-N ONNX Runtime CPU time per image at ``batch`` (after one warm-up run)."""
    x = np.ascontiguousarray(np.resize(pixels, (batch, *pixels.shape[1:])))
    with OrtImageEncoder(path, max_batch=batch) as enc:
        enc.encode_images(x)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            enc.encode_images(x)
            best = min(best, time.perf_counter() - start)
    return best / batch
