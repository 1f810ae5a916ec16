"""The CUDA memory module on a real GPU: buffers, streams, and use from another thread."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def test_device_reports_a_name_and_compute_capability(cuda_device: Any) -> None:
    assert cuda_device.name and cuda_device.compute_capability.count(".") == 1


def test_a_buffer_round_trips_through_the_device(cuda_device: Any) -> None:
    buf = cuda_device.buffer((8, 3, 4, 4), np.float32)
    other = cuda_device.buffer((8, 3, 4, 4), np.float32)
    stream = cuda_device.stream()
    data = np.random.default_rng(0).normal(size=(5, 3, 4, 4)).astype(np.float32)
    with cuda_device.active():
        buf.upload(data, stream)
        stream.synchronize()  # the host twin may be reused only once the copy is done
        buf.host[:] = 0  # so what comes back can only have come from the device
        buf.download(5, stream)
        stream.synchronize()
        other.upload(buf.host[:5], stream)
        stream.synchronize()
        other.host[:] = 0
        other.download(5, stream)
        stream.synchronize()
    assert np.array_equal(buf.host[:5], data) and np.array_equal(other.host[:5], data)
    assert buf.host.flags["C_CONTIGUOUS"] and buf.address != other.address
    buf.free()
    other.free()
    buf.free()  # idempotent


def test_the_context_works_from_another_thread(cuda_device: Any) -> None:
    """The service creates the model on one thread and infers on another."""
    result: dict[str, Any] = {}

    def worker() -> None:
        try:
            buf = cuda_device.buffer((4,), np.int64)
            stream = cuda_device.stream()
            with cuda_device.active():
                buf.upload(np.arange(4, dtype=np.int64), stream)
                stream.synchronize()
                buf.host[:] = -1
                buf.download(4, stream)
                stream.synchronize()
            result["data"] = buf.host.copy()
            buf.free()
        except Exception as err:  # surfaced in the main thread's assert
            result["error"] = err

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    assert "error" not in result, result.get("error")
    assert result["data"].tolist() == [0, 1, 2, 3]
