"""The optional packages of the ONNX features, imported on demand with the install hint."""
from __future__ import annotations

from typing import Any

EXTRA_HINT = "install the ONNX extra: pip install 'clicksam[onnx]'"


def import_onnx() -> Any:
    """The ``onnx`` module, or a RuntimeError naming the extra to install."""
    try:
        import onnx
    except ImportError as exc:
        raise RuntimeError(f"ONNX export needs the 'onnx' package ({exc}); {EXTRA_HINT}") from exc
    return onnx


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a RuntimeError naming the extra to install."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeError(f"running or quantizing an ONNX graph needs 'onnxruntime' ({exc}); {EXTRA_HINT}") from exc
    return onnxruntime
