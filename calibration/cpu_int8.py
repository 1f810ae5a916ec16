"""INT8 for CPU-only stations: the ONNX Runtime format that is fastest on the calibrating machine.

TensorRT's Q/DQ graph (symmetric int8 activations) is not what ONNX Runtime's x86 kernels
want: they are built for u8 activations x s8 weights (VPDPBUSD on VNNI cores). So the
CPU artifact is chosen by measurement among three ONNX Runtime formats:

* ``dynamic``: int8 weights, activation ranges computed per batch at run time (no
  calibration data needed, robust to unseen ranges);
* ``qoperator-u8s8``: static ranges from the calibration set, QLinear* operators;
* ``qdq-u8s8``: the same ranges as Q/DQ pairs that ONNX Runtime fuses into int8 kernels.

Each candidate goes through the same gate as every artifact; the fastest that passes is
written. ``reduce_range`` (7-bit weights) is used only on CPUs without VNNI, where u8 x s8
products can saturate the 16-bit intermediate sums of the older AVX2 path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

from calibration.int8 import QUANT_OPS

CpuFormat = Literal["dynamic", "qoperator-u8s8", "qdq-u8s8"]
CPU_FORMATS: tuple[CpuFormat, ...] = ("dynamic", "qoperator-u8s8", "qdq-u8s8")
DYNAMIC_OPS = ["MatMul", "Gemm"]  # ConvInteger has no fast x86 kernel; the patch Conv stays float


def has_vnni() -> bool:
    """Whether this CPU has the int8 dot-product instructions (AVX-512 VNNI or AVX-VNNI)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _quiet(fn: Callable[[], None]) -> None:
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # ORT warns about pre-processing we deliberately skip
    try:
        fn()
    finally:
        logging.getLogger().setLevel(level)


def build(fmt: CpuFormat, fp32: Path, out: Path, nodes: list[str], cache: Path | None, vnni: bool) -> Path:
    """Write one candidate; static formats need the asymmetric ranges in ``cache``."""
    reduce = not vnni
    if fmt == "dynamic":
        _quiet(lambda: quantize_dynamic(str(fp32), str(out), op_types_to_quantize=DYNAMIC_OPS, per_channel=False,
                                        reduce_range=reduce, weight_type=QuantType.QInt8, nodes_to_quantize=nodes))
        return out
    if cache is None:
        raise ValueError(f"{fmt} needs calibration ranges")
    qformat = QuantFormat.QOperator if fmt == "qoperator-u8s8" else QuantFormat.QDQ
    _quiet(lambda: quantize_static(
        str(fp32), str(out), calibration_data_reader=None, quant_format=qformat, op_types_to_quantize=list(QUANT_OPS),
        per_channel=False, reduce_range=reduce, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        nodes_to_quantize=nodes, extra_options={"QuantizeBias": False} if qformat == QuantFormat.QDQ else {},
        calibration_cache_path=str(cache),
    ))
    return out
