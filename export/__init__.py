"""Workstation side: checkpoints -> ONNX model bundles, and training/fine-tuning.

Needs the ``export`` extra (torch, transformers, onnx). The device never imports it.
"""
