"""INT8 with explicit quantization: the Q/DQ graph TensorRT 10/11 builds from.

The mechanics are ONNX Runtime's ``quantize_static`` (QDQ format), configured for what
TensorRT accepts: symmetric int8 activations and weights (zero points 0), per-channel
weight scales on the output-channel axis, per-tensor activation scales, no int32 bias
quantization, Q/DQ only in front of the linear layers (MatMul with a weight, Conv, Gemm).
Attention's activation x activation MatMuls stay in float unless asked for: their
softmax probabilities have 127 levels under symmetric int8, which is where transformer
INT8 loses most for least speed.

Ranges are computed once per method, by ONNX Runtime's calibrators called directly
(``quantize_static`` cannot pass them a bin count, and its entropy default of 128 bins
for 128 quantized bins leaves KL divergence a single candidate: the max), and cached.
Every variant that sensitivity analysis tries (a different set of excluded nodes) reuses
them, so the analysis costs one quantization and one hold-out pass per group, not one
calibration per group.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Literal

import onnx
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, create_calibrator, quantize_static
from onnxruntime.quantization.calibrate import save_tensors_data

from calibration.ranges import FeedReader

Method = Literal["minmax", "percentile", "entropy"]
METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
    "entropy": CalibrationMethod.Entropy,
}
QUANT_OPS = ("MatMul", "Conv", "Gemm")
# Per-channel weight axis = the output channel: MatMul weights are [K, N], Conv [O, I, kh, kw],
# Gemm (exported with transB=1) [N, K].
PER_CHANNEL_AXIS = {"MatMul": 1, "Conv": 0, "Gemm": 0}


def linear_nodes(model: onnx.ModelProto, include_attention: bool = False) -> list[str]:
    """Nodes to quantize: linear layers with a weight, plus attention MatMuls when asked."""
    inits = {i.name for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type not in QUANT_OPS:
            continue
        has_weight = any(i in inits for i in node.input[:2])
        if has_weight or include_attention:
            out.append(node.name)
    return out


def compute_ranges(
    fp32: Path, reader: FeedReader, cache: Path, method: Method = "minmax", percentile: float = 99.999,
    symmetric: bool = True,
) -> None:
    """Run the calibration pass once and store the ranges for every later variant.

    Symmetric ranges for TensorRT's s8 activations; asymmetric ones for the CPU's u8.
    """
    options: dict[str, object] = {"symmetric": symmetric}
    if method == "percentile":
        options.update(num_bins=2048, percentile=percentile)
    elif method == "entropy":
        options.update(num_bins=2048, num_quantized_bins=128)
    with tempfile.TemporaryDirectory(prefix="edge-inspect-calib-") as tmp:
        calibrator = create_calibrator(
            fp32, list(QUANT_OPS), augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=METHODS[method], extra_options=options,
        )
        calibrator.collect_data(reader)
        save_tensors_data(calibrator.compute_data(), cache)


def quantize(
    fp32: Path,
    out: Path,
    nodes: list[str],
    cache: Path,
    method: Method = "minmax",
) -> None:
    """Write the Q/DQ model quantizing exactly ``nodes``, with the ranges of :func:`compute_ranges`."""
    extra = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "QDQOpTypePerChannelSupportToAxis": dict(PER_CHANNEL_AXIS),
    }
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # ORT warns about pre-processing we deliberately skip
    try:
        quantize_static(
            str(fp32), str(out), calibration_data_reader=None, quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANT_OPS), per_channel=True, reduce_range=False,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            nodes_to_quantize=nodes or ["<none>"], calibrate_method=METHODS[method],
            extra_options=extra, calibration_cache_path=str(cache),
        )
    finally:
        logging.getLogger().setLevel(quiet)
