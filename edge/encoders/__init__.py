"""Encoder backends behind one small interface (ONNX Runtime here, TensorRT later)."""

from edge.encoders.base import ImageEncoder, TextEncoder

__all__ = ["ImageEncoder", "TextEncoder"]
