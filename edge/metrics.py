"""Accuracy measures shared by the demo-model card, the service's demo and the tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum statistic (ties count half)."""
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positives, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def confusion(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts [true label, predicted label] in the order of ``labels``."""
    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, predicted):
        matrix[index[t], index[p]] += 1
    return matrix


def format_confusion(matrix: np.ndarray, labels: Sequence[str]) -> str:
    """A Markdown table: rows are the truth, columns the prediction."""
    head = "| truth \\ predicted | " + " | ".join(labels) + " |"
    rule = "|---" * (len(labels) + 1) + "|"
    rows = [f"| {name} | " + " | ".join(str(int(v)) for v in matrix[i]) + " |"
            for i, name in enumerate(labels)]
    return "\n".join([head, rule, *rows])


def zero_shot_report(
    probs: np.ndarray,  # [N, C] category scores
    names: Sequence[str],
    ok: Sequence[bool],
    truth: Sequence[str],
) -> dict[str, object]:
    """The demo card's measures from per-category scores and true category names.

    AUROC ranks frames by (best defect score - best ok score); type top-1 is measured on
    defective frames only, among the defect categories.
    """
    ok_mask = np.asarray(ok, dtype=bool)
    top = [names[i] for i in probs.argmax(axis=1)]
    defect_score = probs[:, ~ok_mask].max(axis=1) - probs[:, ok_mask].max(axis=1)
    is_defect = np.array([t not in {n for n, k in zip(names, ok) if k} for t in truth])
    defect_names = [n for n, k in zip(names, ok) if not k]
    defect_top = [defect_names[i] for i in probs[:, ~ok_mask].argmax(axis=1)]
    typed = [p == t for p, t, d in zip(defect_top, truth, is_defect) if d]
    return {
        "frames": len(truth),
        "top1": float(np.mean([p == t for p, t in zip(top, truth)])),
        "defect_type_top1": float(np.mean(typed)) if typed else float("nan"),
        "auroc_good_vs_defect": auroc(defect_score, is_defect),
        "confusion": confusion(truth, top, list(names)).tolist(),
        "labels": list(names),
    }
