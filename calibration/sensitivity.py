"""Which layer groups INT8 hurts most, and keeping them in float until the gate passes.

A *variant* is the Q/DQ model with some nodes left in float; ranges are cached, so a
variant costs one quantization and one hold-out pass. Sensitivity quantizes one group at a
time (all else float) and ranks groups by the worst-case cosine they cause alone; the
automatic fallback then keeps groups in float, most damaging first, until the gate passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calibration.gate import Comparison, Thresholds
from edge.bundle import GateRecord
from edge.progress import Steps


@dataclass
class Variants:
    build: Callable[[set[str]], Path]  # nodes kept in float -> Q/DQ model file
    evaluate: Callable[[Path], Comparison]
    thresholds: Thresholds

    def gate(self, skip: set[str]) -> tuple[Path, Comparison, GateRecord]:
        path = self.build(skip)
        comparison = self.evaluate(path)
        return path, comparison, comparison.record(self.thresholds, None)


def rank(variants: Variants, by_group: dict[str, list[str]], quantizable: list[str], excluded: set[str],
         steps: Steps) -> list[dict[str, Any]]:
    """One row per group (only it in INT8), most damaging first."""
    out = []
    for i, (group, nodes) in enumerate(by_group.items(), 1):
        _, _, gate = variants.gate(set(quantizable) - (set(nodes) - excluded))
        out.append({"group": group, "nodes": len(nodes), "cosine_p1": gate.cosine_p1,
                    "cosine_mean": gate.cosine_mean, "verdict_agreement": gate.verdict_agreement})
        steps.info(f"sensitivity {i}/{len(by_group)}: {group} alone in INT8 -> cosine p1 {gate.cosine_p1:.5f}")
    return sorted(out, key=lambda c: (c["cosine_p1"], c["verdict_agreement"]))


@dataclass
class Fallback:
    path: Path
    comparison: Comparison
    gate: GateRecord
    kept: list[str]
    steps: list[dict[str, Any]] = field(default_factory=list)


def keep_until_it_passes(variants: Variants, ranked: list[dict[str, Any]], by_group: dict[str, list[str]],
                         excluded: set[str], kept: list[str], steps: Steps) -> Fallback | None:
    """Keep the most sensitive groups in float, one more at a time, until the gate passes.

    At least one group stays INT8: with every group kept the "INT8" artifact has no quantized node, passes the
    gate trivially and is FP32 under another name (it did, on demo-clip's 4000-step weights)."""
    excluded, kept = set(excluded), list(kept)
    every = set().union(*by_group.values())
    result: Fallback | None = None
    for cost in ranked:
        group = set(by_group[cost["group"]])
        if group <= excluded:  # already float (--exclude)
            continue
        if every <= excluded | group:
            steps.info(f"not keeping {cost['group']} in float too: nothing would be left in INT8")
            break
        excluded |= group
        kept.append(cost["group"])
        path, comparison, gate = variants.gate(excluded)
        history = result.steps if result else []
        history.append({"kept": ", ".join(kept), "cosine_p1": gate.cosine_p1,
                        "verdict_agreement": gate.verdict_agreement, "passed": gate.passed})
        result = Fallback(path, comparison, gate, list(kept), history)
        steps.info(f"kept {cost['group']} in float: cosine p1 {gate.cosine_p1:.5f}, "
                   f"agreement {gate.verdict_agreement:.2%}")
        if gate.passed:
            break
    return result
