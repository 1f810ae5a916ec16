"""FP16: a mixed graph with float32 islands, each one kept for a stated reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from calibration.fp16 import FP16_MAX, convert, float_dtypes, plan_fp16
from edge.bundle import Bundle
from edge.model import ZeroShotModel
from tests.calibration.conftest import report


def _input_dtype(model: onnx.ModelProto, tensor: str) -> int:
    """Element type of a tensor, from value_info, graph inputs or the Cast that produced it."""
    for vi in (*model.graph.value_info, *model.graph.input):
        if vi.name == tensor:
            return vi.type.tensor_type.elem_type
    producer = next(n for n in model.graph.node if tensor in n.output)
    assert producer.op_type == "Cast"
    return next(a.i for a in producer.attribute if a.name == "to")


def test_fp16_artifacts_pass_the_gate_and_keep_float_islands(fp16_demo: Path) -> None:
    bundle = Bundle.open(fp16_demo)
    files = bundle.manifest.files
    assert {"vision.fp16", "text.fp16"} <= set(files)
    for role in ("vision.fp16", "text.fp16"):
        rec = files[role].calibration
        assert rec is not None and rec.gate is not None and rec.gate.passed
        assert rec.gate.cosine_p1 >= 0.999 and rec.format == "float16-mixed"
    vision = onnx.load(str(fp16_demo / "vision.fp16.onnx"))
    counts = float_dtypes(vision)
    assert counts["float16"] > 50 * counts["float32"]  # the weights really are halved
    # callers keep feeding what the bundle says (uint8 images) and reading float32
    assert [i.type.tensor_type.elem_type for i in vision.graph.input] == [TensorProto.UINT8]
    for io in vision.graph.output:
        assert io.type.tensor_type.elem_type == TensorProto.FLOAT
    for node in vision.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax", "ReduceL2"):
            assert _input_dtype(vision, node.input[0]) == TensorProto.FLOAT, node.name
    section = report(fp16_demo)["artifacts"]["vision.fp16"]
    text_kept = [k for k in section["kept_float"] if k["tower"] == "text"]
    # the causal mask (-3.4e38) cannot be represented in float16: the range rule must have caught it
    assert any("reached" in k["reason"] and "Add" in k["name"] for k in text_kept)
    assert section["text_cosine_min"] >= 0.999


def test_runtime_runs_fp16_towers(fp16_demo: Path) -> None:
    bundle = Bundle.open(fp16_demo)
    with ZeroShotModel(bundle, precision="fp16") as half, ZeroShotModel(bundle) as full:
        a, b = half.embed_texts(["a scratch"]), full.embed_texts(["a scratch"])
        assert half.text_encoder._session.path.name == "text.fp16.onnx"  # type: ignore[attr-defined]
    assert float(a[0] @ b[0]) > 0.999


def _graph_with_a_hot_tensor() -> onnx.ModelProto:
    """x -> MatMul(W) -> Mul(by 1e5) -> LayerNorm -> y: the Mul's output overflows float16."""
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")
    big = numpy_helper.from_array(np.array(1e5, np.float32), "big")
    gamma = numpy_helper.from_array(np.ones(4, np.float32), "gamma")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="/layers.0/fc/MatMul"),
             helper.make_node("Mul", ["h", "big"], ["hot"], name="/layers.0/scale/Mul"),
             helper.make_node("LayerNormalization", ["hot", "gamma"], ["y"], name="/head/ln", axis=-1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [w, big, gamma])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_range_rule_keeps_overflowing_nodes_in_float32() -> None:
    model = _graph_with_a_hot_tensor()
    plan = plan_fp16(model, {"x": 1.0, "h": 1.0, "hot": 1e5, "y": 3.0}, headroom=16)
    kept = {k.node: k.reason for k in plan.kept}
    assert "/layers.0/fc/MatMul" not in kept  # |h| = 1 is safe in float16
    assert "reached 1e+05" in kept["/layers.0/scale/Mul"] and f"{FP16_MAX / 16:.4g}" in kept["/layers.0/scale/Mul"]
    assert "normalisation" in kept["/head/ln"]
    half = convert(model, plan)
    mul = next(n for n in half.graph.node if n.name == "/layers.0/scale/Mul")
    assert _input_dtype(half, mul.input[0]) == TensorProto.FLOAT
    # with harmless activations the Mul is still kept: its constant 1e5 itself does not fit float16
    quiet = {k.node: k.reason for k in plan_fp16(model, {"hot": 1e3}, headroom=16).kept}
    assert "weight big holds 1e+05" in quiet["/layers.0/scale/Mul"]
    assert "/layers.0/fc/MatMul" not in quiet
