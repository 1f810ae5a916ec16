"""TensorRT encoders behind the same interface as ONNX Runtime's.

Written against the TensorRT 10 Python API (named I/O tensors, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``), which TensorRT 11 keeps; nothing here uses
the binding-index API that 10 removed or the builder flags that 11 removed. Each thread
that infers gets its own execution context, stream and buffers (allocated once, for the
engine profile's max batch), so the service's inference thread never shares them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from edge.contract import IMAGE_EMBEDS, INPUT_IDS, PATCH_EMBEDS, TEXT_EMBEDS
from edge.encoders.cuda_memory import CudaDevice, HostDeviceBuffer, Stream
from edge.encoders.onnxruntime import check_input
from edge.engines.device import import_tensorrt
from edge.errors import EngineError


@dataclass
class _ThreadState:
    context: Any
    stream: Stream
    buffers: dict[str, HostDeviceBuffer]


class TrtEngine:
    """A deserialized engine; :meth:`run` is safe to call from several threads."""

    def __init__(self, path: Path, device: CudaDevice) -> None:
        trt = import_tensorrt()
        self._trt = trt
        self.path = path
        self.device = device
        self._logger = trt.Logger(trt.Logger.ERROR)
        with device.active():
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise EngineError(f"{path}: TensorRT cannot deserialize it (built by another TensorRT version or "
                              "damaged); rebuild it with 'edge-inspect build'.")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.inputs[0], 0)[2][0])
        self._local = threading.local()
        self._states: list[_ThreadState] = []
        self._lock = threading.Lock()

    def _dtype(self, name: str) -> np.dtype[Any]:
        return np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))

    def _state(self, example: dict[str, np.ndarray]) -> _ThreadState:
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is None:
            with self.device.active():
                context = self.engine.create_execution_context()
                if context is None:
                    raise EngineError(f"{self.path}: cannot create an execution context (out of GPU memory?).")
            buffers = {}
            for name in self.inputs:
                buffers[name] = self.device.buffer((self.max_batch, *example[name].shape[1:]), self._dtype(name))
            for name in self.outputs:
                shape = tuple(self.engine.get_tensor_shape(name))
                buffers[name] = self.device.buffer((self.max_batch, *shape[1:]), self._dtype(name))
            state = _ThreadState(context, self.device.stream(), buffers)
            self._local.state = state
            with self._lock:
                self._states.append(state)
        return state

    def host_input(self, name: str, rows: int, example_shape: tuple[int, ...]) -> np.ndarray | None:
        """This thread's page-locked host buffer for input ``name``, first ``rows`` rows: preprocessing writes the
        batch there and :meth:`run` copies it to the device once, with no staging copy. None above max_batch."""
        if rows > self.max_batch:
            return None
        state = self._state({name: np.empty((1, *example_shape), self._dtype(name))})
        return state.buffers[name].host[:rows]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batch of at most ``max_batch`` rows; returns copies of the outputs."""
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise EngineError(f"{self.path}: input {missing[0]} not fed; the engine expects {', '.join(self.inputs)}.")
        batch = len(feeds[self.inputs[0]])
        if batch > self.max_batch:
            raise EngineError(f"{self.path}: batch {batch} exceeds the engine profile's max batch {self.max_batch}; "
                              "rebuild with a larger --max-batch or lower model.max_batch.")
        state = self._state(feeds)
        with self.device.active():
            for name in self.inputs:
                data = np.ascontiguousarray(feeds[name], dtype=self._dtype(name))
                state.context.set_input_shape(name, data.shape)
                state.buffers[name].upload(data, state.stream)
            for name, buf in state.buffers.items():
                state.context.set_tensor_address(name, buf.address)
            if not state.context.execute_async_v3(state.stream.handle):
                raise EngineError(f"{self.path}: TensorRT execution failed; see the TensorRT log above.")
            for name in self.outputs:
                state.buffers[name].download(batch, state.stream)
            state.stream.synchronize()
        return {name: state.buffers[name].host[:batch].copy() for name in self.outputs}

    def close(self) -> None:
        with self._lock, self.device.active():
            for state in self._states:
                for buf in state.buffers.values():
                    buf.free()
                state.context = None
            self._states.clear()
            self.engine = None
            self._runtime = None


_E = TypeVar("_E", bound="_TrtEncoder")


class _TrtEncoder:
    def __init__(self, path: Path, device: CudaDevice, precision: str, max_batch: int | None) -> None:
        self._engine = TrtEngine(path, device)
        self.max_batch = min(max_batch or self._engine.max_batch, self._engine.max_batch)
        self.precision = precision
        self.name = "tensorrt"

    def _run(self, feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
        total = len(next(iter(feeds.values())))
        parts = [self._engine.run({k: v[i : i + self.max_batch] for k, v in feeds.items()})[output]
                 for i in range(0, total, self.max_batch)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)

    def close(self) -> None:
        self._engine.close()

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class TrtImageEncoder(_TrtEncoder):
    """TensorRT supports uint8 only as network I/O followed by a cast, which is exactly how the uint8 graph
    begins (Transpose, Cast), so the engine takes the camera's bytes."""

    @property
    def has_patches(self) -> bool:
        return PATCH_EMBEDS.name in self._engine.outputs

    @property
    def input_name(self) -> str:
        return str(self._engine.inputs[0])

    @property
    def input_dtype(self) -> str:
        return str(self._engine._dtype(self.input_name))

    def input_buffer(self, rows: int, size: int) -> np.ndarray | None:
        """Page-locked rows for a uint8 batch of ``size`` x ``size`` frames; None for float engines and for batches
        the encoder splits into chunks (a later chunk would be staged over the first rows of the caller's array)."""
        if self.input_dtype != "uint8" or rows > self.max_batch:
            return None
        return self._engine.host_input(self.input_name, rows, (size, size, 3))

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        check_input(self._engine.path, pixel_values, self.input_dtype)
        return self._run({self.input_name: pixel_values}, IMAGE_EMBEDS.name)

    def encode_views(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Both outputs of one execution (patch_embeds only in engines built from such a graph)."""
        if not self.has_patches:
            return self.encode_images(pixel_values), None
        check_input(self._engine.path, pixel_values, self.input_dtype)
        parts = [self._engine.run({self.input_name: pixel_values[i : i + self.max_batch]})
                 for i in range(0, len(pixel_values), self.max_batch)]
        image = np.concatenate([p[IMAGE_EMBEDS.name] for p in parts]).astype(np.float32)
        return image, np.concatenate([p[PATCH_EMBEDS.name] for p in parts]).astype(np.float32)


class TrtTextEncoder(_TrtEncoder):
    def encode_texts(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {INPUT_IDS.name: input_ids}
        if "attention_mask" in self._engine.inputs:
            feeds["attention_mask"] = attention_mask
        return self._run(feeds, TEXT_EMBEDS.name)
