"""Threshold calibration: per-category thresholds from a few labelled frames.

Raw zero-shot scores are not comparable across prompts (the most common complaint about
CLIP triggers), so each defect category gets the threshold that maximises F1 of "this
defect vs everything else" on the operator's labelled frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.prompts import PromptSet


@dataclass(frozen=True)
class ThresholdProposal:
    category: str
    threshold: float
    precision: float
    recall: float
    positives: int


def best_threshold(scores: np.ndarray, positive: np.ndarray, clip: bool = True) -> tuple[float, float, float]:
    """(threshold, precision, recall) with the best F1; midpoints between distinct scores (clipped to [0, 1]
    for probabilities; ``clip=False`` for anomaly ratios)."""
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    best = (0.5, 0.0, 0.0, -1.0)
    for t in candidates:
        pred = scores >= t
        tp = int((pred & positive).sum())
        precision = tp / max(1, int(pred.sum()))
        recall = tp / max(1, int(positive.sum()))
        f1 = 2 * precision * recall / max(1e-12, precision + recall)
        if f1 > best[3]:
            best = (float(np.clip(t, 0, 1)) if clip else float(t), precision, recall, f1)
    return best[0], best[1], best[2]


def propose_thresholds(probs: np.ndarray, labels: list[str], prompts: PromptSet) -> list[ThresholdProposal]:
    names = [c.name for c in prompts.categories]
    truth = np.array(labels)
    out = []
    for i, cat in enumerate(prompts.categories):
        if cat.ok:
            continue
        positive = truth == cat.name
        t, p, r = best_threshold(probs[:, i], positive)
        out.append(ThresholdProposal(names[i], t, p, r, int(positive.sum())))
    return out
