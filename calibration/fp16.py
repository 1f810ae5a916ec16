"""FP16: a mixed-precision graph whose every tensor already has its final precision.

TensorRT 11 builds strongly typed networks only (the FP16/INT8 builder flags are gone), so
the ONNX must say which tensors are float16 - the approach of ModelOpt's AutoCast. The
mechanics are ONNX Runtime's ``convert_float_to_float16`` (inputs and outputs stay
float32, Casts at island borders); what stays float32 is decided here, for a stated reason:

* ops that lose most in float16 (LayerNorm, Softmax, reductions) - :data:`FLOAT_ISLAND_OPS`;
* the final L2 normalisation;
* every node whose inputs or outputs reached more than ``fp16_max`` on the calibration data.

The last rule matters because ONNX Runtime on a CPU computes float16 ops in float32, so
running the FP16 graph here cannot reveal an overflow that the device would hit. The
FP32 ranges can: a tensor that reached 40,000 on calibration images is one unlucky frame
away from 65,504 (float16's largest value), hence the default headroom of 16x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.transformers.float16 import convert_float_to_float16

from calibration.graph import FLOAT_ISLAND_OPS, final_normalisation, group_of, toposort

FP16_MAX = 65504.0
DEFAULT_HEADROOM = 16.0


@dataclass(frozen=True)
class KeptFloat:
    node: str
    op: str
    reason: str

    @property
    def group(self) -> str:
        return group_of(self.node)


@dataclass
class Fp16Plan:
    kept: list[KeptFloat]
    largest_activation: float  # over all tensors, on calibration data
    fp16_limit: float  # activations above this keep their nodes in float32


def plan_fp16(model: onnx.ModelProto, absmax: dict[str, float], headroom: float = DEFAULT_HEADROOM) -> Fp16Plan:
    """Which nodes stay float32, and why (one reason per node: the first rule that applies)."""
    limit = FP16_MAX / headroom
    init_max = {i.name: float(np.max(np.abs(numpy_helper.to_array(i)))) if i.data_type == onnx.TensorProto.FLOAT
                and np.prod(i.dims) > 0 else 0.0 for i in model.graph.initializer}
    tail = set(final_normalisation(model))
    kept: list[KeptFloat] = []
    for node in model.graph.node:
        reason = FLOAT_ISLAND_OPS.get(node.op_type)
        if reason is None and node.name in tail:
            reason = "the final L2 normalisation keeps the output unit-length to float32 precision"
        if reason is None:
            seen = [(absmax.get(t, 0.0), t) for t in (*node.input, *node.output) if t]
            peak, tensor = max(seen, default=(0.0, ""))
            if peak > limit:
                reason = (f"activation {tensor} reached {peak:.4g} on calibration data, above the fp16 "
                          f"limit {limit:.4g} (65504 / headroom {headroom:g})")
        if reason is None:
            big = [(init_max.get(t, 0.0), t) for t in node.input if t in init_max]
            peak, tensor = max(big, default=(0.0, ""))
            if peak > FP16_MAX:
                reason = f"weight {tensor} holds {peak:.4g}, beyond float16's range"
        if reason is not None:
            kept.append(KeptFloat(node.name, node.op_type, reason))
    return Fp16Plan(kept, max(absmax.values(), default=0.0), limit)


def convert(model: onnx.ModelProto, plan: Fp16Plan) -> onnx.ModelProto:
    """The float16 graph with the plan's float32 islands; float32 inputs and outputs."""
    converted: onnx.ModelProto = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=[], node_block_list=[k.node for k in plan.kept],
    )
    toposort(converted)
    onnx.checker.check_model(converted)
    return converted


def float_dtypes(model: onnx.ModelProto) -> dict[str, int]:
    """Count of float16 / float32 initializer elements: proves the weights really are halved."""
    out = {"float16": 0, "float32": 0}
    for init in model.graph.initializer:
        n = int(np.prod(init.dims))
        if init.data_type == onnx.TensorProto.FLOAT16:
            out["float16"] += n
        elif init.data_type == onnx.TensorProto.FLOAT:
            out["float32"] += n
    return out
