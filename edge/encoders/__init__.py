"""Encoder backends behind one small interface: ONNX Runtime (any CPU) and TensorRT (NVIDIA GPUs)."""

from edge.encoders.base import ImageEncoder, TextEncoder

__all__ = ["ImageEncoder", "TextEncoder"]
