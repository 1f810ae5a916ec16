"""Verdicts from scores: thresholds, the uncertain band, N-of-M smoothing, thresholds proposal."""

from __future__ import annotations

import numpy as np

from edge.inspect.decision import Decision, Smoother, decide
from edge.inspect.thresholds import best_threshold, propose_thresholds
from edge.prompts import PromptSet


def _set(**decision: object) -> PromptSet:
    return PromptSet.model_validate({
        "name": "t", "decision": decision,
        "categories": [{"name": "good", "ok": True, "prompts": ["good"]},
                       {"name": "scratch", "prompts": ["s"], "threshold": 0.6},
                       {"name": "hole", "prompts": ["h"]}]})


def test_verdicts() -> None:
    ps = _set(threshold=0.5, uncertain_margin=0.1)
    assert decide({"good": 0.9, "scratch": 0.05, "hole": 0.05}, ps) == Decision("ok", "good", 0.9)
    assert decide({"good": 0.1, "scratch": 0.8, "hole": 0.1}, ps).verdict == "ng"
    assert decide({"good": 0.3, "scratch": 0.65, "hole": 0.05}, ps) == Decision("uncertain", "scratch", 0.65)
    assert decide({"good": 0.3, "scratch": 0.1, "hole": 0.62}, ps) == Decision("ng", "hole", 0.62)
    both = decide({"good": 0.0, "scratch": 0.95, "hole": 0.99}, ps)
    assert both == Decision("ng", "hole", 0.99)  # the stronger defect decides


def test_smoothing_n_of_m() -> None:
    ps = _set(smoothing={"n": 2, "m": 3})
    sm = Smoother()
    ng = Decision("ng", "hole", 0.9)
    ok = Decision("ok", "good", 0.9)
    assert sm.apply("cam1", ng, ps).verdict == "uncertain"  # 1 of 3
    assert sm.apply("cam2", ng, ps).verdict == "uncertain"  # cameras are independent
    assert sm.apply("cam1", ok, ps).verdict == "ok"
    assert sm.apply("cam1", ng, ps).verdict == "ng"  # 2 of the last 3
    assert sm.apply("cam1", ok, ps).verdict == "ok"
    assert sm.apply("cam1", ok, ps).verdict == "ok"
    assert sm.apply("cam1", ng, ps).verdict == "uncertain"  # the old NGs slid out


def test_threshold_proposal_separates_a_separable_set() -> None:
    scores = np.array([0.1, 0.2, 0.25, 0.7, 0.8, 0.9])
    positive = np.array([False, False, False, True, True, True])
    t, p, r = best_threshold(scores, positive)
    assert 0.25 < t <= 0.7 and p == 1.0 and r == 1.0
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7], [0.1, 0.6, 0.3]])
    out = {p.category: p for p in propose_thresholds(probs, ["good", "scratch", "hole", "scratch"], _set())}
    assert set(out) == {"scratch", "hole"} and out["scratch"].recall == 1.0 and out["scratch"].positives == 2
