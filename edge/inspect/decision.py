"""Scores -> verdict: per-category thresholds, an uncertain band, N-of-M smoothing.

Raw zero-shot scores are not comparable across prompts, so every defect category has its
own threshold (``edge-inspect prompts calibrate`` proposes them from a few labelled frames).
A score within ``uncertain_margin`` of its threshold gives ``uncertain`` rather than a
confident verdict that flips with noise.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from edge.prompts import PromptSet

Verdict = Literal["ok", "ng", "uncertain"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    category: str  # the defect that decided an NG/uncertain verdict, else the top category
    score: float


def decide(scores: dict[str, float], prompts: PromptSet) -> Decision:
    """One frame's verdict from its per-category scores."""
    margin = prompts.decision.uncertain_margin
    worst_ng: tuple[float, str] | None = None
    worst_unsure: tuple[float, str] | None = None
    for cat in prompts.categories:
        if cat.ok:
            continue
        s, t = scores[cat.name], prompts.threshold(cat)
        if s >= t + margin:
            worst_ng = max(worst_ng or (s, cat.name), (s, cat.name))
        elif s > t - margin:
            worst_unsure = max(worst_unsure or (s, cat.name), (s, cat.name))
    if worst_ng:
        return Decision("ng", worst_ng[1], worst_ng[0])
    if worst_unsure:
        return Decision("uncertain", worst_unsure[1], worst_unsure[0])
    top = max(scores, key=lambda k: scores[k])
    return Decision("ok", top, scores[top])


def decide_anomaly(ratio: float, scores: dict[str, float], prompts: PromptSet) -> Decision:
    """A frame with a good-part memory: ``ratio`` (anomaly score / its threshold) decides the verdict,
    the text (of the zoomed crop, for an anomalous frame) decides the defect's name.

    ng at ratio >= 1; uncertain within ``uncertain_margin`` below it; ok otherwise, even when a
    text score drifts above its threshold (the memory saw nothing unusual)."""
    defects = [c.name for c in prompts.categories if not c.ok]
    margin = prompts.decision.uncertain_margin
    if ratio >= 1.0 - margin:
        name = max(defects, key=lambda k: scores[k])
        return Decision("ng" if ratio >= 1.0 else "uncertain", name, scores[name])
    top = max(scores, key=lambda k: scores[k])
    return Decision("ok", top, scores[top])


class Smoother:
    """N-of-M per camera: NG only when N of the last M frame verdicts were NG.

    With the default 1-of-1 it passes verdicts through unchanged. A smoothed-away NG
    becomes ``uncertain``, so an integrator still sees that one frame disagreed.
    """

    def __init__(self) -> None:
        self._history: dict[str, deque[bool]] = {}

    def apply(self, camera: str, decision: Decision, prompts: PromptSet) -> Decision:
        n, m = prompts.decision.smoothing.n, prompts.decision.smoothing.m
        history = self._history.setdefault(camera, deque(maxlen=m))
        if history.maxlen != m:
            history = self._history[camera] = deque(history, maxlen=m)
        history.append(decision.verdict == "ng")
        if decision.verdict == "ng" and sum(history) < n:
            return Decision("uncertain", decision.category, decision.score)
        return decision

    def reset(self) -> None:
        self._history.clear()
