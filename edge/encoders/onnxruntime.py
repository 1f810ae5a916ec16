"""ONNX Runtime encoders: the CPU backend, and the reference every other backend meets."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import numpy as np

from edge.contract import IMAGE_EMBEDS, INPUT_IDS, PATCH_EMBEDS, TEXT_EMBEDS, VISION_INPUT_WORDS, text_graph
from edge.errors import EngineError


def default_threads() -> int:
    """Cores this process may use (respects cgroup/affinity limits, unlike cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OrtSession:
    """One ONNX Runtime session with the options we tune; closed by its owner.

    What was measured on the 2-core development machine and decided:

    * all graph optimisations (fusions matter most for the int8 graphs);
    * intra-op threads from ``model.threads``, defaulting to the cores this process may
      use (its affinity mask, which a cgroup or systemd's CPUAffinity may narrow), one
      inter-op thread (the graphs are sequential);
    * the CPU memory arena and memory-pattern planning on (their defaults, stated here):
      batch sizes repeat, so the planned buffers are reused from the second frame on;
    * no I/O binding: on the CPU provider inputs are already read in place, and binding the
      output measured the same within noise (demo-clip batch 8: 52-54 ms either way);
    * a warm-up run is the caller's job (the service runs one before the first frame).

    ``emulate_qdq`` runs a Q/DQ graph's QuantizeLinear/DequantizeLinear as they are written, with
    the linear layers in float, instead of fusing them into x86 int8 kernels. That is TensorRT's
    arithmetic (int8 values, exact products), the same on every CPU; the fused kernels are not:
    without AVX-512 VNNI their u8s8 products saturate (demo-siglip: image cosine p1 0.985 fused on
    an AVX2-only CPU, 0.997 emulated). The accuracy gate of a TensorRT artifact measures with it.
    """

    def __init__(self, path: Path, threads: int | None = None, emulate_qdq: bool = False) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if emulate_qdq:
            options.add_session_config_entry("session.disable_quant_qdq", "1")
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_cpu_mem_arena = True
        options.enable_mem_pattern = True
        options.log_severity_level = 3
        try:
            self.session: ort.InferenceSession | None = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise EngineError(
                f"{path}: ONNX Runtime cannot load it ({str(err).splitlines()[0]}); "
                "re-export or re-calibrate the bundle."
            ) from err
        self.path = path
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.input_types = {i.name: ORT_TYPES.get(i.type, i.type) for i in self.session.get_inputs()}

    def run(self, output: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.run_many([output], feeds)[0]

    def run_many(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.session is None:
            raise EngineError(f"{self.path}: session already closed; open the encoder again.")
        feeds = {k: v for k, v in feeds.items() if k in self.input_names}
        return list(self.session.run(outputs, feeds))

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()] if self.session is not None else []

    def close(self) -> None:
        self.session = None


ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int64)": "int64",
             "tensor(float16)": "float16"}


def check_input(path: Path, batch: np.ndarray, expected: str) -> None:
    """One line naming the graph's input type and the fix, instead of a backend's error deep in a thread."""
    if batch.dtype != np.dtype(expected):
        other = VISION_INPUT_WORDS.get(expected, f"{expected} input")
        raise EngineError(f"{path}: takes {other}, was given {batch.dtype} {list(batch.shape)}; the bundle.json "
                          "beside it describes another export (re-export the bundle, or rebuild the engine from "
                          "this bundle with 'edge-inspect build').")


_E = TypeVar("_E", bound="_OrtEncoder")


def _chunks(total: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, total)) for i in range(0, total, size)]


class _OrtEncoder:
    def __init__(self, path: Path, threads: int | None, max_batch: int, emulate_qdq: bool = False) -> None:
        self._session = OrtSession(path, threads, emulate_qdq)
        self.max_batch = max_batch
        self.name = "onnxruntime"

    def close(self) -> None:
        self._session.close()

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class OrtImageEncoder(_OrtEncoder):
    """Vision tower on ONNX Runtime."""

    def __init__(
        self, path: Path, precision: str = "fp32", threads: int | None = None, max_batch: int = 32,
        emulate_qdq: bool = False,
    ) -> None:
        super().__init__(path, threads, max_batch, emulate_qdq)
        self.precision = precision
        self.has_patches = PATCH_EMBEDS.name in self._session.output_names
        session = self._session.session
        assert session is not None
        first = session.get_inputs()[0]
        self.input_name = first.name
        self.input_dtype = ORT_TYPES.get(first.type, first.type)  # "uint8" (images) or "float32" (pixel_values)

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        """The graph's input (uint8 images or float pixel_values, as its bundle says) -> image embeddings."""
        check_input(self._session.path, pixel_values, self.input_dtype)
        parts = [
            self._session.run(IMAGE_EMBEDS.name, {self.input_name: pixel_values[s]})
            for s in _chunks(len(pixel_values), self.max_batch)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def encode_views(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Image and patch embeddings from one pass (patches None for bundles without them)."""
        if not self.has_patches:
            return self.encode_images(pixel_values), None
        check_input(self._session.path, pixel_values, self.input_dtype)
        outs = [self._session.run_many([IMAGE_EMBEDS.name, PATCH_EMBEDS.name], {self.input_name: pixel_values[s]})
                for s in _chunks(len(pixel_values), self.max_batch)]
        if not outs:
            return np.zeros((0, 0), np.float32), None
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


class OrtTextEncoder(_OrtEncoder):
    """Text tower on ONNX Runtime (runs only when the prompt set changes)."""

    def __init__(self, path: Path, threads: int | None = None, max_batch: int = 64) -> None:
        super().__init__(path, threads, max_batch)
        self._graph = text_graph(needs_attention_mask=True)

    def encode_texts(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        parts = []
        for s in _chunks(len(input_ids), self.max_batch):
            feeds = {INPUT_IDS.name: input_ids[s], self._graph.inputs[1].name: attention_mask[s]}
            parts.append(self._session.run(TEXT_EMBEDS.name, feeds))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
