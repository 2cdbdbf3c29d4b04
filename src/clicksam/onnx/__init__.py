"""ONNX export of SAM's prompt encoder + mask decoder, and an onnxruntime runner.

``export_decoder(model, "decoder.onnx")`` writes the file (``clicksam export-onnx`` on the command
line); ``OnnxDecoder("decoder.onnx")`` runs it on a predictor's embedding. Both need the ``[onnx]``
extra (``pip install 'clicksam[onnx]'``); importing this package does not.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DecoderExportModule", "OnnxDecoder", "export_decoder"]

_LAZY = {
    "DecoderExportModule": "clicksam.onnx.model",
    "OnnxDecoder": "clicksam.onnx.runtime",
    "export_decoder": "clicksam.onnx.export",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clicksam.onnx' has no attribute {name!r}")
