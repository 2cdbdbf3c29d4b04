"""ONNX export of SAM's image encoder and of its prompt encoder + decoder, with onnxruntime runners.

``export_decoder(model, "decoder.onnx")`` writes the decoder file (``clicksam export-onnx`` on the
command line); ``OnnxDecoder("decoder.onnx")`` runs it on a predictor's embedding.
``OnnxEncoder.from_model(model, precision="fp32" | "int8")`` runs the image encoder; its graph is
exported once per weights and cached (:func:`export_encoder`, :func:`cached_graph`). All of this
needs the ``[onnx]`` extra (``pip install 'clicksam[onnx]'``); importing this package does not.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DecoderExportModule", "GraphKey", "OnnxDecoder", "OnnxEncoder", "cached_graph", "export_decoder", "export_encoder"]

_LAZY = {
    "DecoderExportModule": "clicksam.onnx.model",
    "GraphKey": "clicksam.onnx.graph_cache",
    "OnnxDecoder": "clicksam.onnx.runtime",
    "OnnxEncoder": "clicksam.onnx.encoder",
    "cached_graph": "clicksam.onnx.graph_cache",
    "export_decoder": "clicksam.onnx.export",
    "export_encoder": "clicksam.onnx.encoder",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clicksam.onnx' has no attribute {name!r}")
