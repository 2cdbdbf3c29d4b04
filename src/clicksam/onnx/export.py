"""Export SAM's prompt encoder + mask decoder (+ upscaling to the image size) to an ONNX file.

The graph is traced with PyTorch's TorchScript-based exporter (``dynamo=False``): it keeps the
original-image size as a run-time input (the crop and the final resize follow ``orig_im_size``)
and exports the decoder in seconds. The ``torch.export`` path would need ``onnxscript``, takes
minutes on a small CPU and specialises data-dependent sizes, so it is not used.
"""
from __future__ import annotations

import io
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Union

import torch

from clicksam.io.atomic import atomic_write_bytes
from clicksam.models.sam import Sam
from clicksam.onnx.model import INPUT_NAMES, OUTPUT_NAMES, DecoderExportModule, example_inputs

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_OPSET = 17
# 14: scaled_dot_product_attention; 20: the newest opset PyTorch's TorchScript exporter writes.
MIN_OPSET, MAX_OPSET = 14, 20
METADATA_PREFIX = "clicksam."
# the model families whose decoder the graph reproduces (SAM 2's skips and object score, HQ-SAM's
# HQ token and early feature are not in it)
EXPORTED_FAMILIES = ("sam",)
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
        raise RuntimeError(f"running or quantizing an ONNX decoder needs 'onnxruntime' ({exc}); {EXTRA_HINT}") from exc
    return onnxruntime


def check_opset(opset: object) -> int:
    """Validate an ONNX opset number; returns it as int."""
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise ValueError(f"opset must be an integer between {MIN_OPSET} and {MAX_OPSET}, got {opset!r}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(
            f"opset {opset} is not supported: use {MIN_OPSET}-{MAX_OPSET} (default {DEFAULT_OPSET}); "
            f"below {MIN_OPSET} attention cannot be exported, above {MAX_OPSET} PyTorch's exporter has no support"
        )
    return opset


def check_family(family: str, model_name: str) -> None:
    """Refuse a model family whose decoder the exported graph does not reproduce (ValueError)."""
    if family not in EXPORTED_FAMILIES:
        raise ValueError(f"the ONNX decoder graph is SAM's; {family} models ({model_name}) have no ONNX export yet "
                         "(their decoders read more image features). Run them with torch: clicksam segment / serve / "
                         "label-studio, or SamPredictor")


def attached_methods(model: Sam) -> list[str]:
    """Method stages attached to ``model`` that have no ONNX export (their spec's ``onnx`` is None):
    they are not part of the exported graphs."""
    from clicksam.methods import attached_methods as attached

    return [spec.name for spec in attached(model) if spec.onnx is None]


def export_methods(model: Sam, decoder_path: PathLike, opset: int = DEFAULT_OPSET) -> dict[str, list[Path]]:
    """Run the ONNX export hook of every attached method stage that has one (``MethodSpec.onnx``);
    returns method name -> the files it wrote beside ``decoder_path``."""
    from clicksam.methods import attached_methods as attached
    from clicksam.methods import resolve

    return {spec.name: [Path(p) for p in resolve(spec.onnx.export)(model, Path(decoder_path), opset)]
            for spec in attached(model) if spec.onnx is not None}


def trace_decoder(model: Sam, return_single_mask: bool = False, opset: int = DEFAULT_OPSET) -> bytes:
    """Trace the decoder of ``model`` and return the serialised ONNX model (no metadata yet).

    Args:
        model: a float32 :class:`~clicksam.models.sam.Sam`.
        return_single_mask: one output mask chosen by SAM's rule instead of all four.
        opset: ONNX opset version, ``MIN_OPSET``..``MAX_OPSET``.
    Returns:
        the ONNX protobuf bytes; inputs :data:`~clicksam.onnx.model.INPUT_NAMES` with a dynamic
        number of points, outputs :data:`~clicksam.onnx.model.OUTPUT_NAMES` with a dynamic
        height and width for ``masks``.
    """
    if getattr(model, "family", None) is not None:
        check_family(model.family, getattr(model, "model_name", "?"))
    if not isinstance(model, Sam):
        raise ValueError(f"model must be a clicksam Sam (see clicksam.build_sam), got {type(model).__name__}")
    opset = check_opset(opset)
    dtype = model.mask_decoder.iou_token.weight.dtype
    if dtype != torch.float32:
        raise ValueError(f"the decoder weights are {dtype}; export a float32 model (model.float()) and use --quantize to shrink it")
    module = DecoderExportModule(model, return_single_mask=return_single_mask).eval()
    inputs = tuple(t.to(model.device) for t in example_inputs(module.embed_dim, model.prompt_encoder.image_embedding_size[0]))
    dynamic_axes = {
        "point_coords": {1: "num_points"},
        "point_labels": {1: "num_points"},
        "masks": {2: "height", 3: "width"},
    }
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of torch.export (see the module
        # docstring); its tracer also warns about Python-level shape checks that are constant here.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            torch.onnx.export(
                module,
                inputs,
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
        except TypeError as exc:
            raise RuntimeError(
                f"this PyTorch ({torch.__version__}) has no TorchScript ONNX exporter (torch.onnx.export(dynamo=False)): {exc}; "
                "use a PyTorch release that still ships it (2.1-2.13 are known to work)"
            ) from exc
    return buffer.getvalue()


def add_metadata(model_bytes: bytes, metadata: dict[str, str]) -> bytes:
    """Return ``model_bytes`` with ``metadata`` (keys prefixed ``clicksam.``) stored in the model's
    ``metadata_props``, after checking the model with ``onnx.checker``."""
    onnx = import_onnx()
    proto = onnx.load_from_string(model_bytes)
    existing = {prop.key: prop for prop in proto.metadata_props}
    for key, value in metadata.items():
        full_key = METADATA_PREFIX + key
        prop = existing[full_key] if full_key in existing else proto.metadata_props.add()
        prop.key, prop.value = full_key, str(value)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise RuntimeError(f"the exported ONNX model does not pass onnx.checker: {exc}") from exc
    return proto.SerializeToString()


def quantize_bytes(model_bytes: bytes, workdir: Path) -> bytes:
    """Dynamic (weight-only uint8) quantization of an ONNX model with onnxruntime, as SAM's own
    export script does. Temporary files go to ``workdir`` and are removed."""
    import_onnxruntime()
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise RuntimeError(f"onnxruntime.quantization is unavailable ({exc}); {EXTRA_HINT}") from exc
    fd_in, float_path = tempfile.mkstemp(prefix=".decoder-float.", suffix=".onnx", dir=workdir)
    fd_out, quant_path = tempfile.mkstemp(prefix=".decoder-quant.", suffix=".onnx", dir=workdir)
    os.close(fd_out)
    root_logger = logging.getLogger()
    level = root_logger.level
    try:
        with os.fdopen(fd_in, "wb") as handle:
            handle.write(model_bytes)
        # onnxruntime advises its pre-processing step on the root logger; it changes nothing here.
        root_logger.setLevel(max(level, logging.ERROR))
        quantize_dynamic(
            model_input=float_path,
            model_output=quant_path,
            per_channel=False,
            reduce_range=False,
            weight_type=QuantType.QUInt8,
        )
        return Path(quant_path).read_bytes()
    finally:
        root_logger.setLevel(level)
        for name in (float_path, quant_path):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass


def export_decoder(
    model: Sam,
    output: PathLike,
    *,
    return_single_mask: bool = False,
    opset: int = DEFAULT_OPSET,
    quantize: bool = False,
) -> Path:
    """Write the ONNX decoder of ``model`` to ``output`` (atomically: temp file + ``os.replace``).

    Args:
        model: a float32 :class:`~clicksam.models.sam.Sam` (e.g. ``clicksam.build_sam("vit_b", ckpt)``).
        output: destination ``.onnx`` file; parent folders are created.
        return_single_mask: one mask per call (SAM's rule) instead of all four tokens.
        opset: ONNX opset, ``MIN_OPSET``..``MAX_OPSET`` (default 17, as segment-anything).
        quantize: store the matrix weights as uint8 (onnxruntime dynamic quantization): a file
            about half the size (the 1×256×64×64 positional encoding stays float), logits that
            differ slightly from the float model's.
    Returns:
        the path written. Inputs, outputs and shapes are those of
        :class:`~clicksam.onnx.model.DecoderExportModule`; the file's metadata records the model
        name, weights digest, opset, single-mask mode and quantization under ``clicksam.*`` keys.
    """
    target = Path(output)
    if target.exists() and target.is_dir():
        raise ValueError(f"output {target} is a directory; give a file name such as {target / 'decoder.onnx'}")
    import_onnx()
    if quantize:
        import_onnxruntime()
    model_bytes = trace_decoder(model, return_single_mask=return_single_mask, opset=opset)
    metadata = {
        "format": "sam-decoder",
        "model": getattr(model, "model_name", "custom"),
        "weights_sha256": getattr(model, "weights_sha256", None) or "",
        "image_size": str(model.image_size),
        "opset": str(opset),
        "return_single_mask": "1" if return_single_mask else "0",
        "quantized": "1" if quantize else "0",
    }
    model_bytes = add_metadata(model_bytes, metadata)
    if quantize:
        target.parent.mkdir(parents=True, exist_ok=True)
        model_bytes = quantize_bytes(model_bytes, target.parent)
        model_bytes = add_metadata(model_bytes, metadata)
    path = atomic_write_bytes(target, model_bytes)
    # The temporary file behind the atomic write is private (0600); a model file is meant to be
    # shared with other users and services, so make it world-readable (rw-r--r--).
    os.chmod(path, 0o644)
    return path
