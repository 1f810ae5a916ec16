"""What the device is: TensorRT version, GPU, Jetson Linux release.

The GPU is asked through the CUDA memory module (the one place that talks to CUDA), the
release through ``/etc/nv_tegra_release``, which every Jetson Linux image carries.
"""

from __future__ import annotations

import re
from pathlib import Path

from edge.engines.manifest import DeviceFacts
from edge.errors import MissingDeviceStack, install_hint

TEGRA_RELEASE = Path("/etc/nv_tegra_release")


def l4t_release(path: Path = TEGRA_RELEASE) -> str | None:
    """'36.3.0' from '# R36 (release), REVISION: 3.0, GCID: ...'; None when not a Jetson."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def import_tensorrt(station: bool = True):  # type: ignore[no-untyped-def]
    """``tensorrt``, or a MissingDeviceStack error (exit code 10, an EngineError too) that says how to get it;
    ``station``: also say that a station can run on ONNX Runtime instead (not for build and selftest)."""
    try:
        import tensorrt
    except ImportError as err:
        raise MissingDeviceStack(
            f"TensorRT is not installed ({err}); on a Jetson it comes with JetPack (python3-libnvinfer), elsewhere "
            f"with the 'tensorrt' extra: {install_hint('tensorrt')}"
            + ("; or set model.backend: onnxruntime." if station else ".")
        ) from err
    return tensorrt


def tensorrt_major(version: str) -> int:
    return int(version.split(".")[0])


def device_facts(ordinal: int = 0, station: bool = True) -> DeviceFacts:
    """Facts of this device; EngineError when TensorRT, pycuda or a GPU is missing (see import_tensorrt)."""
    trt = import_tensorrt(station)
    from edge.encoders.cuda_memory import CudaDevice

    gpu = CudaDevice.open(ordinal)
    try:
        return DeviceFacts(tensorrt_version=trt.__version__, gpu_name=gpu.name,
                           compute_capability=gpu.compute_capability, l4t_release=l4t_release())
    finally:
        gpu.close()
