"""All CUDA memory and stream handling, in one small module (pycuda today).

TensorRT needs three things from CUDA: a context, a stream, and device buffers with
page-locked host twins for asynchronous copies. pycuda binds a context to the thread that
made it current, and the service creates the model on one thread and infers on another,
so this module uses the device's *primary* context (the one TensorRT's runtime API uses
too) and makes it current only for the duration of :meth:`CudaDevice.active`. Moving to
cuda-python, which NVIDIA's own TensorRT samples now use, would touch this file alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from edge.errors import EngineError, MissingDeviceStack, install_hint


def _driver() -> Any:
    try:
        import pycuda.driver as cuda
    except ImportError as err:
        raise MissingDeviceStack(
            f"pycuda is not installed or finds no CUDA driver ({err}); on a Jetson: pip install pycuda (JetPack's CUDA "
            f"on PATH; TensorRT comes with JetPack), elsewhere: {install_hint('tensorrt')}; or set model.backend: "
            "onnxruntime."
        ) from err
    return cuda


class CudaDevice:
    """One GPU's primary context; current only inside :meth:`active`."""

    def __init__(self, cuda: Any, device: Any) -> None:
        self._cuda = cuda
        self._device = device
        self._context = device.retain_primary_context()
        self.name: str = device.name()
        major, minor = device.compute_capability()
        self.compute_capability = f"{major}.{minor}"

    @classmethod
    def open(cls, ordinal: int = 0) -> CudaDevice:
        cuda = _driver()
        try:
            cuda.init()
            count = cuda.Device.count()
        except Exception as err:  # pycuda raises its own driver errors
            raise EngineError(f"CUDA cannot start ({err}); check the NVIDIA driver, or set "
                              "model.backend: onnxruntime.") from err
        if ordinal >= count:
            raise EngineError(f"GPU {ordinal} does not exist ({count} found); set model.backend: onnxruntime "
                              "on a machine without an NVIDIA GPU.")
        return cls(cuda, cuda.Device(ordinal))

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make the context current on this thread for the block (re-entrant per push/pop)."""
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def stream(self) -> Stream:
        with self.active():
            return Stream(self._cuda, self._cuda.Stream())

    def buffer(self, shape: tuple[int, ...], dtype: np.dtype[Any] | type) -> HostDeviceBuffer:
        with self.active():
            return HostDeviceBuffer(self._cuda, shape, np.dtype(dtype))

    def close(self) -> None:
        """Release this process's hold on the primary context."""
        if self._context is not None:
            self._context.detach()
            self._context = None


class Stream:
    def __init__(self, cuda: Any, stream: Any) -> None:
        self._cuda = cuda
        self._stream = stream

    @property
    def handle(self) -> int:
        """The raw cudaStream_t, as TensorRT's execute_async_v3 takes it."""
        return int(self._stream.handle)

    def synchronize(self) -> None:
        self._stream.synchronize()

    @property
    def raw(self) -> Any:
        return self._stream


class HostDeviceBuffer:
    """A page-locked host array and a device allocation of the same size, made once for the max batch."""

    def __init__(self, cuda: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self._cuda = cuda
        self.host: np.ndarray = cuda.pagelocked_empty(shape, dtype)
        self.device = cuda.mem_alloc(max(1, self.host.nbytes))
        self.shape = shape

    @property
    def address(self) -> int:
        return int(self.device)

    def upload(self, data: np.ndarray, stream: Stream) -> None:
        """Copy ``data`` (leading rows of the buffer) to the device, asynchronously."""
        rows = len(data)
        if not (data.ctypes.data == self.host.ctypes.data and data.dtype == self.host.dtype):
            self.host[:rows] = data  # staged; a batch written straight into ``host`` (host_input) is not
        self._cuda.memcpy_htod_async(self.device, self.host[:rows], stream.raw)

    def download(self, rows: int, stream: Stream) -> None:
        """Queue the copy of the first ``rows`` back into ``host``; valid after ``stream.synchronize()``."""
        self._cuda.memcpy_dtoh_async(self.host[:rows], self.device, stream.raw)

    def free(self) -> None:
        if self.device is not None:
            self.device.free()
            self.device = None
