"""GPU-only tests: marked ``gpu`` and skipped, with the reason, where there is no GPU or TensorRT.

They run on the device (``pytest -m gpu``) or on a lent GPU machine; the CPU suite proves
everything around them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def _skip_reason_cuda() -> str | None:
    try:
        import pycuda.driver as cuda
    except ImportError as err:
        return f"pycuda not importable ({err})"
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA device"
    except Exception as err:  # pycuda driver errors
        return f"CUDA does not start ({err})"
    return None


@pytest.fixture(scope="session")
def cuda_device() -> Iterator[Any]:
    reason = _skip_reason_cuda()
    if reason:
        pytest.skip(f"needs an NVIDIA GPU with pycuda: {reason}")
    from edge.encoders.cuda_memory import CudaDevice

    device = CudaDevice.open()
    yield device
    device.close()


@pytest.fixture(scope="session")
def tensorrt(cuda_device: Any) -> Any:
    try:
        import tensorrt
    except ImportError as err:
        pytest.skip(f"needs TensorRT: {err}")
    return tensorrt
