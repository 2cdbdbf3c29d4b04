"""Dynamic int8/uint8 quantisation of an exported ONNX graph with onnxruntime.

Dynamic quantisation stores the weights of the chosen operators as 8-bit integers with a scale and
zero point; activations are quantised on the fly, per call, from their own range, so no calibration
images are needed. The encoder's recipe was chosen by measurement: signed int8 weights, MatMul
only, per-channel scales; see ``benchmarks/int8_encoder.py`` and ``docs/ONNX.md``.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from clicksam.onnx.deps import EXTRA_HINT, import_onnxruntime

PathLike = Union[str, "os.PathLike[str]"]
WEIGHT_TYPES = ("int8", "uint8")


@contextlib.contextmanager
def quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantiser advises its pre-processing step on the root logger; silence it."""
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root_logger.setLevel(level)


def quantize_dynamic_file(
    source: PathLike,
    target: PathLike,
    *,
    weight_type: str = "int8",
    per_channel: bool = False,
    op_types: Optional[Sequence[str]] = ("MatMul",),
) -> Path:
    """Write a dynamically quantised copy of the ONNX graph ``source`` to ``target``.

    Args:
        source: a float32 ONNX file (its external tensor file, if any, beside it).
        target: the file to write (its folder must exist; not atomic: write into a private folder).
        weight_type: ``"int8"`` (signed weights; with onnxruntime's uint8 activations this runs the
            u8×s8 kernels that use VNNI/AMX instructions) or ``"uint8"``.
        per_channel: one scale per output channel instead of one per tensor.
        op_types: the operator types to quantise (``MatMul`` with a constant weight; ``Conv``
            becomes ``ConvInteger``); None: every type onnxruntime's dynamic quantiser supports.
    Returns:
        ``target``.
    """
    import_onnxruntime()
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise RuntimeError(f"onnxruntime.quantization is unavailable ({exc}); {EXTRA_HINT}") from exc
    if weight_type not in WEIGHT_TYPES:
        raise ValueError(f"weight_type must be one of {', '.join(WEIGHT_TYPES)}, got {weight_type!r}")
    source, target = Path(source), Path(target)
    external = Path(f"{source}.data").is_file()
    with quiet_root_logger():
        quantize_dynamic(
            model_input=str(source),
            model_output=str(target),
            op_types_to_quantize=None if op_types is None else list(op_types),
            per_channel=per_channel,
            reduce_range=False,
            weight_type=QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8,
            use_external_data_format=external,
            extra_options={"MatMulConstBOnly": True},
        )
    return target
