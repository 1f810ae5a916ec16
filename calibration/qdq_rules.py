"""The rules a Q/DQ graph must obey for TensorRT 10/11 explicit quantization.

Checked by walking the graph, both by the tests and by ``calibrate`` before it writes an
artifact: a graph that breaks them would either fail the engine build on the device or,
worse, build with silently different precision.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from calibration.int8 import PER_CHANNEL_AXIS

MIN_OPSET = 17
FLOAT_ONLY = ("LayerNormalization", "Softmax")


def violations(model: onnx.ModelProto, allow_int8_attention: bool = False) -> list[str]:
    """Every broken rule, one line each; empty when the graph is fit for TensorRT."""
    out: list[str] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        out.append(f"opset {opset} < {MIN_OPSET}")
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(n.input) < 3 or n.input[2] not in inits:
            out.append(f"{n.name}: no constant zero point (TensorRT needs symmetric int8, zero point 0)")
            continue
        zp = inits[n.input[2]]
        if zp.data_type != onnx.TensorProto.INT8:
            out.append(f"{n.name}: zero point is {onnx.TensorProto.DataType.Name(zp.data_type)}, not INT8")
        if np.any(numpy_helper.to_array(zp) != 0):
            out.append(f"{n.name}: zero point not 0")
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            out.extend(_weight_rules(n, inits, consumers))
    for n in model.graph.node:
        if n.op_type in FLOAT_ONLY:
            src = producer.get(n.input[0])
            if src is not None and src.op_type == "DequantizeLinear":
                out.append(f"{n.name}: {n.op_type} reads a DequantizeLinear output (would run in int8)")
            if not allow_int8_attention and n.op_type == "Softmax":
                q = [c.name for c in consumers.get(n.output[0], []) if c.op_type == "QuantizeLinear"]
                if q:
                    out.append(f"{n.name}: Softmax output is quantized by {q[0]} (attention int8 not asked for)")
    return out


def _weight_rules(dq: onnx.NodeProto, inits: dict[str, onnx.TensorProto],
                  consumers: dict[str, list[onnx.NodeProto]]) -> list[str]:
    weight = inits[dq.input[0]]
    scale = numpy_helper.to_array(inits[dq.input[1]])
    users = consumers.get(dq.output[0], [])
    if weight.data_type != onnx.TensorProto.INT8:
        return [f"{dq.name}: weight {weight.name} is {onnx.TensorProto.DataType.Name(weight.data_type)}, not INT8"]
    if not users:
        return []
    op = users[0].op_type
    want = PER_CHANNEL_AXIS.get(op)
    if want is None:
        return [f"{dq.name}: int8 weight feeds {op}, which is not a linear layer"]
    if op == "Gemm" and not any(a.name == "transB" and a.i == 1 for a in users[0].attribute):
        want = 1
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    channels = weight.dims[want] if want < len(weight.dims) else 0
    if scale.ndim != 1 or scale.size != channels:
        return [f"{dq.name}: weight scale has shape {scale.shape}, expected per-channel ({channels},) on axis {want}"]
    if axis != want:
        return [f"{dq.name}: per-channel axis {axis}, expected {want} (output channels of {op})"]
    return []


def summary(model: onnx.ModelProto) -> dict[str, int]:
    """How many Q and DQ nodes, and how many linear layers read an int8 weight."""
    q = sum(n.op_type == "QuantizeLinear" for n in model.graph.node)
    dq = sum(n.op_type == "DequantizeLinear" for n in model.graph.node)
    inits = {i.name for i in model.graph.initializer}
    weights = sum(n.op_type == "DequantizeLinear" and n.input[0] in inits for n in model.graph.node)
    return {"quantize_linear": q, "dequantize_linear": dq, "int8_weights": weights}
