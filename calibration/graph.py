"""Reading an exported tower graph: node groups, and the nodes that must stay in float.

Sensitivity analysis, ``--exclude`` and the report talk about *groups* - the embeddings,
each transformer block, and the head - rather than hundreds of ONNX nodes. The names come
from the exporter's module scopes (``/vision_model/encoder/layers.3/mlp/fc1/MatMul``), the
same for CLIP and SigLIP.
"""

from __future__ import annotations

import heapq
import re
from collections import defaultdict
from pathlib import Path

import onnx

_LAYER = re.compile(r"layers\.(\d+)/")

# Ops that TensorRT (and our own accuracy budget) want in float: normalisation statistics,
# exponentials and reductions lose most when their inputs are rounded.
FLOAT_ISLAND_OPS = {
    "LayerNormalization": "normalisation statistics (mean/variance) lose precision and can overflow in fp16",
    "Softmax": "exp() of large logits overflows fp16; the sum needs fp32 accumulation",
    "ReduceMean": "a reduction: fp16 accumulation loses precision",
    "ReduceSum": "a reduction: fp16 accumulation loses precision",
    "ReduceL2": "the final L2 normalisation: a sum of squares overflows fp16",
    "Pow": "squares overflow fp16",
    "Sqrt": "part of a normalisation",
}


def load(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path))


def group_of(node_name: str) -> str:
    """``layers.N`` for a transformer block, ``embeddings`` before it, ``head`` after it."""
    m = _LAYER.search(node_name)
    if m:
        return f"layers.{int(m.group(1))}"
    return "embeddings" if "embeddings" in node_name else "head"


def groups(model: onnx.ModelProto, op_types: set[str] | None = None) -> dict[str, list[str]]:
    """Group name -> node names (only nodes of ``op_types`` when given), in graph order."""
    out: dict[str, list[str]] = defaultdict(list)
    for node in model.graph.node:
        if op_types is None or node.op_type in op_types:
            out[group_of(node.name)].append(node.name)
    return dict(sorted(out.items(), key=lambda kv: _group_order(kv[0])))


def _group_order(name: str) -> tuple[int, int]:
    if name == "embeddings":
        return (0, 0)
    if name.startswith("layers."):
        return (1, int(name.split(".")[1]))
    return (2, 0)


def final_normalisation(model: onnx.ModelProto) -> list[str]:
    """The nodes between the last ReduceL2 and the graph output (the L2 normalisation)."""
    producers = {out: n for n in model.graph.node for out in n.output}
    chain: list[str] = []
    frontier = [o.name for o in model.graph.output]
    while frontier:
        node = producers.get(frontier.pop())
        if node is None or node.op_type not in {"Div", "Clip", "ReduceL2", "Max", "Sqrt", "ReduceSum", "Pow"}:
            continue
        if node.name not in chain:
            chain.append(node.name)
            frontier.extend(node.input)
    return chain


def weight_inputs(model: onnx.ModelProto) -> set[str]:
    return {i.name for i in model.graph.initializer}


def toposort(model: onnx.ModelProto) -> None:
    """Reorder the nodes so each comes after its inputs' producers (in place).

    ONNX Runtime's float16 converter appends its Cast nodes at the end; ONNX requires, and
    TensorRT's parser assumes, topological order. Kahn's algorithm, stable for ties.
    """
    nodes = list(model.graph.node)
    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    producer_of = {out: idx for idx, n in enumerate(nodes) for out in n.output}
    waiting = {idx: {t for t in n.input if t not in available and t in producer_of} for idx, n in enumerate(nodes)}
    consumers: dict[int, list[int]] = defaultdict(list)
    for idx, deps in waiting.items():
        for t in deps:
            consumers[producer_of[t]].append(idx)
    ready = sorted(idx for idx, deps in waiting.items() if not deps)
    order: list[int] = []
    queued = set(ready)
    heapq.heapify(ready)
    while ready:
        idx = heapq.heappop(ready)
        order.append(idx)
        for out in nodes[idx].output:
            for c in consumers.get(idx, []):
                waiting[c].discard(out)
                if not waiting[c] and c not in queued:
                    queued.add(c)
                    heapq.heappush(ready, c)
    if len(order) != len(nodes):
        raise ValueError("graph has a cycle or an input nobody produces")
    del model.graph.node[:]
    model.graph.node.extend(nodes[i] for i in order)
