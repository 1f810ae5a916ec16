"""ONNX -> FP16 / INT8 ONNX with an accuracy gate (uses edge.preprocess, never its own)."""
