"""The accuracy gate: a reduced-precision artifact against FP32, on images it was not calibrated on.

Three views, because each one alone can be fooled:

* image-embedding cosine (mean, 1st percentile, min) over the hold-out crops - the p1 is gated,
  since a mean of 0.995 can hide the 1 % of crops where the model sees something else;
* the verdicts that reach the MES - per *frame*, as the service makes them (max over the frame's
  tiles, the prompt set's thresholds and uncertain band): a harmful flip (ok <-> ng, or another NG
  category) counts against the artifact; a move into or out of the uncertain band is counted apart
  (a human looks at uncertain frames anyway). The gate takes the Wilson lower bound (one-sided 95 %)
  of the share of frames without a harmful flip, so that 1 flip in 48 frames cannot look like 98 %;
  a hold-out set too small to reach the bound even without a flip is an error that says how many
  frames it needs;
* the largest category-score difference, which shows how close the next flip is.

The ONNX Runtime CPU latency ratio is reported beside them, so that an INT8 graph slower
than FP32 (a known trap) is seen before it ships.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.bundle import BundleManifest, GateRecord
from edge.encoders.onnxruntime import OrtImageEncoder
from edge.errors import CalibrationError
from edge.inspect.decision import decide
from edge.inspect.frames import frame_rows, score_dict
from edge.prompts import PromptSet
from edge.scoring import category_probs, l2_normalize

Z = 1.645  # one-sided 95 %


@dataclass(frozen=True)
class Thresholds:
    min_cosine: float
    min_agreement: float  # on the Wilson lower bound of harmful-flip-free frames
    min_patch_cosine: float = 0.0  # p1 of the patch tokens' cosine (the good-part memory's distances)


# Patch tokens are gated a little looser for INT8 than the pooled embedding, which averages their noise out
# (demo-clip, tokens of layers 1 and 2 of 4, 2x2 tiles: p1 0.9971 TensorRT Q/DQ and 0.9974 CPU int8, image p1
# 0.9992 and 0.9991; FP16 1.0000).
DEFAULTS = {"fp16": Thresholds(0.999, 0.97, 0.999), "int8": Thresholds(0.99, 0.97, 0.98)}


def wilson_lower(successes: int, n: int, z: float = Z) -> float:
    """Lower bound of a binomial proportion (Wilson score interval)."""
    if n == 0:
        return 0.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def min_frames(min_agreement: float, z: float = Z) -> int:
    """The fewest frames whose bound can reach ``min_agreement`` at all (with no flip)."""
    if min_agreement <= 0:
        return 1
    if min_agreement >= 1:
        raise CalibrationError("--min-agreement 1 can never be shown on a finite hold-out set; use at most 0.999.")
    return math.ceil(z * z * min_agreement / (1 - min_agreement))


def check_sample(frames: int, min_agreement: float) -> None:
    """A one-line error when the hold-out set is too small for the agreement threshold."""
    need = min_frames(min_agreement)
    if frames < need:
        raise CalibrationError(
            f"{frames} hold-out frames give an agreement bound of at most {wilson_lower(frames, frames):.3f}, even "
            f"without a single flip, below --min-agreement {min_agreement}; use at least {need} frames "
            f"(--holdout-images {need}) or lower --min-agreement.")


Verdict = tuple[str, str]  # (ok | ng | uncertain, the deciding category or "" for ok)


def flip_kind(ref: Verdict, cand: Verdict) -> str:
    """'same', 'harmful' (ok <-> ng, or another NG category) or 'band' (into or out of uncertain)."""
    if ref == cand:
        return "same"
    if "uncertain" in (ref[0], cand[0]):
        return "band"
    return "harmful"


@dataclass
class Comparison:
    """Per-crop and per-frame numbers behind a :class:`GateRecord`, kept for the report."""

    cosines: np.ndarray  # [N crops]
    score_diffs: np.ndarray  # [F, C] candidate - reference, per frame
    ref_verdicts: list[Verdict]  # per frame
    cand_verdicts: list[Verdict]
    ref_scores: np.ndarray  # [F, C]
    cand_scores: np.ndarray  # [F, C]
    names: list[str]
    text_cosines: np.ndarray | None = None  # [T], when the text tower was converted too
    patch_cosines: np.ndarray | None = None  # [N crops x P], for bundles with patch tokens
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kinds = [flip_kind(a, b) for a, b in zip(self.ref_verdicts, self.cand_verdicts)]

    @property
    def harmful(self) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k == "harmful"]

    @property
    def band(self) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k == "band"]

    def record(self, t: Thresholds, latency_ratio: float | None) -> GateRecord:
        frames = len(self.kinds)
        clean = frames - len(self.harmful)
        lower = wilson_lower(clean, frames)
        p1 = float(np.percentile(self.cosines, 1))
        text_ok = self.text_cosines is None or float(self.text_cosines.min()) >= t.min_cosine
        patch_p1 = None if self.patch_cosines is None else float(np.percentile(self.patch_cosines, 1))
        patch_ok = patch_p1 is None or patch_p1 >= t.min_patch_cosine
        return GateRecord(
            passed=bool(p1 >= t.min_cosine and lower >= t.min_agreement and text_ok and patch_ok),
            patch_cosine_p1=patch_p1, min_patch_cosine=None if patch_p1 is None else t.min_patch_cosine,
            images=len(self.cosines), frames=frames, cosine_mean=float(self.cosines.mean()), cosine_p1=p1,
            cosine_min=float(self.cosines.min()), verdict_agreement=clean / max(1, frames),
            agreement_lower_bound=lower, harmful_flips=len(self.harmful), band_moves=len(self.band),
            max_score_diff=float(np.abs(self.score_diffs).max()) if self.score_diffs.size else 0.0,
            latency_ratio=latency_ratio, min_cosine=t.min_cosine, min_agreement=t.min_agreement,
        )


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=1)


def frame_verdicts(image: np.ndarray, text: np.ndarray, prompts: PromptSet, m: BundleManifest,
                   counts: list[int]) -> tuple[np.ndarray, list[Verdict]]:
    """Frame scores [F, C] (max over each frame's crops) and verdicts, with the service's own rules."""
    crop_scores = category_probs(l2_normalize(image), l2_normalize(text), m.family, m.logit_scale, m.logit_bias)
    scores = frame_rows(crop_scores, counts)
    names = [c.name for c in prompts.categories]
    out: list[Verdict] = []
    for row in scores:
        d = decide(score_dict(names, row), prompts)  # rounded as the line decides
        out.append((d.verdict, d.category if d.verdict != "ok" else ""))
    return scores, out


@dataclass
class Views:
    """A tower's outputs on the hold-out crops: image embeddings [N, D] and patch tokens [N, P, Dp] (or None)."""

    image: np.ndarray
    patches: np.ndarray | None = None


def compare(ref: Views, cand: Views, ref_text: np.ndarray, cand_text: np.ndarray,
            prompts: PromptSet, manifest: BundleManifest, counts: list[int],
            text_cosines: np.ndarray | None = None) -> Comparison:
    ref_scores, ref_v = frame_verdicts(ref.image, ref_text, prompts, manifest, counts)
    cand_scores, cand_v = frame_verdicts(cand.image, cand_text, prompts, manifest, counts)
    patch = None
    if ref.patches is not None and cand.patches is not None:
        d = ref.patches.shape[-1]
        patch = cosines(ref.patches.reshape(-1, d), cand.patches.reshape(-1, d))
    return Comparison(cosines(ref.image, cand.image), cand_scores - ref_scores, ref_v, cand_v, ref_scores,
                      cand_scores, [c.name for c in prompts.categories], text_cosines, patch)


def encode(path: Path, pixels: np.ndarray, threads: int | None = None, emulate_qdq: bool = False) -> Views:
    """Both outputs of a vision graph on ``pixels`` (patch tokens when it has them); the encoder batches by 16.
    ``emulate_qdq`` for TensorRT's Q/DQ graphs: measure TensorRT's int8 arithmetic, not this CPU's kernels."""
    with OrtImageEncoder(path, threads=threads, max_batch=16, emulate_qdq=emulate_qdq) as enc:
        return Views(*enc.encode_views(pixels))


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
