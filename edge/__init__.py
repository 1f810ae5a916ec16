"""edge-inspect runtime: the on-device service and the ``edge-inspect`` CLI.

This package never imports torch or transformers: the device has ONNX Runtime or
TensorRT, OpenCV, numpy, tokenizers, paho-mqtt and pydantic, and nothing more.
"""

__version__ = "0.1.0"
