"""Export SAM's prompt encoder + mask decoder (+ upscaling to the image size) to an ONNX file.

The graph is traced with PyTorch's TorchScript-based exporter (``dynamo=False``): it keeps the
original-image size as a run-time input (the crop and the final resize follow ``orig_im_size``)
and exports the decoder in seconds. The ``torch.export`` path would need ``onnxscript``, takes
minutes on a small CPU and specialises data-dependent sizes, so it is not used.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, ContextManager, Optional, Union

import torch

from clicksam.io.atomic import atomic_write_bytes
from clicksam.onnx.deps import EXTRA_HINT, import_onnx, import_onnxruntime  # noqa: F401 - re-exported
from clicksam.models.hooks import NO_HOOKS, DecoderHooks
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


def trace_decoder(model: Sam, return_single_mask: bool = False, opset: int = DEFAULT_OPSET,
                  hooks: DecoderHooks = NO_HOOKS) -> bytes:
    """Trace the decoder of ``model`` and return the serialised ONNX model (no metadata yet).

    Args:
        model: a float32 :class:`~clicksam.models.sam.Sam`.
        return_single_mask: one output mask chosen by SAM's rule instead of all four.
        opset: ONNX opset version, ``MIN_OPSET``..``MAX_OPSET``.
        hooks: decoder hooks traced into the graph (a method's key/value plugins).
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
    module = DecoderExportModule(model, return_single_mask=return_single_mask, hooks=hooks).eval()
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


def set_metadata(proto: Any, metadata: dict[str, str]) -> Any:
    """Store ``metadata`` (keys prefixed ``clicksam.``) in an ``onnx.ModelProto``'s
    ``metadata_props``, replacing earlier values of the same keys; returns ``proto``."""
    existing = {prop.key: prop for prop in proto.metadata_props}
    for key, value in metadata.items():
        full_key = METADATA_PREFIX + key
        prop = existing[full_key] if full_key in existing else proto.metadata_props.add()
        prop.key, prop.value = full_key, str(value)
    return proto


def trace_graph(module: torch.nn.Module, inputs: tuple, path: PathLike, *, input_names: list[str],
                output_names: list[str], metadata: dict[str, str], opset: int,
                dynamic_axes: Optional[dict] = None, context: Optional[ContextManager] = None) -> Path:
    """Trace ``module`` in eval mode into the ONNX file ``path`` and return ``path``.

    The graph carries ``metadata`` (keys prefixed ``clicksam.``, plus ``opset``), passes
    ``onnx.checker`` and is written by :func:`clicksam.onnx.graph_cache.save_graph`; the trace goes
    to a staging folder beside ``path`` that is removed afterwards. Every submodule's training flag
    is restored as it was. ``context`` (optional) is entered around the export only, for modules
    that take an export-only form.
    """
    from clicksam.onnx.graph_cache import save_graph

    opset = check_opset(opset)
    onnx = import_onnx()
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    path = Path(path)
    trace = path.with_name(path.name + ".trace")
    trace.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), torch.no_grad(), (context or contextlib.nullcontext()):
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, inputs, str(trace / "graph.onnx"), dynamo=False, opset_version=opset,
                              input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes or None, do_constant_folding=True)
        proto = set_metadata(onnx.load(str(trace / "graph.onnx")), {**metadata, "opset": str(opset)})
        onnx.checker.check_model(proto)
        save_graph(proto, path)
    finally:
        shutil.rmtree(trace, ignore_errors=True)
        for m, training in modes:
            m.training = training
    return path


def add_metadata(model_bytes: bytes, metadata: dict[str, str]) -> bytes:
    """Return ``model_bytes`` with ``metadata`` (keys prefixed ``clicksam.``) stored in the model's
    ``metadata_props``, after checking the model with ``onnx.checker``."""
    onnx = import_onnx()
    proto = set_metadata(onnx.load_from_string(model_bytes), metadata)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise RuntimeError(f"the exported ONNX model does not pass onnx.checker: {exc}") from exc
    return proto.SerializeToString()


def quantize_bytes(model_bytes: bytes, workdir: Path) -> bytes:
    """Dynamic (weight-only uint8) quantization of an ONNX model with onnxruntime, as SAM's own
    export script does. Temporary files go to ``workdir`` and are removed."""
    from clicksam.onnx.quantize import quantize_dynamic_file

    import_onnxruntime()
    fd_in, float_path = tempfile.mkstemp(prefix=".decoder-float.", suffix=".onnx", dir=workdir)
    fd_out, quant_path = tempfile.mkstemp(prefix=".decoder-quant.", suffix=".onnx", dir=workdir)
    os.close(fd_out)
    try:
        with os.fdopen(fd_in, "wb") as handle:
            handle.write(model_bytes)
        quantize_dynamic_file(float_path, quant_path, weight_type="uint8", per_channel=False, op_types=None)
        return Path(quant_path).read_bytes()
    finally:
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
    hooks: DecoderHooks = NO_HOOKS,
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
        hooks: decoder hooks traced into the graph (a method's key/value plugins; the methods'
            export hooks use it, see ``MethodSpec.onnx``).
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
    model_bytes = trace_decoder(model, return_single_mask=return_single_mask, opset=opset, hooks=hooks)
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
