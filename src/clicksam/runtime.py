"""Where a predictor's model runs: the runtime seam behind :class:`clicksam.SamPredictor`.

A predictor has one road from an image to masks (encode, decode, back to the image size); a
runtime is what it calls at those three points::

    features = runtime.encode_features(model_input)          # 1×3×S×S -> the feature bundle
    out = runtime.decode(features, points, boxes, ...)       # -> DecoderOutput (low-res, IoU, tokens)
    full = runtime.postprocessor.postprocess_masks(logits, input_size, original_size)

- ``"torch"`` (:class:`TorchRuntime`): the model itself, every family, every method, any device.
- ``"onnx"`` (:class:`clicksam.onnx.predictor_runtime.OnnxRuntime`): the image encoder, the prompt
  encoder + mask decoder and the upscaling to the image size run as exported graphs on
  onnxruntime (CPU), fp32 or with an int8 encoder; graphs are exported once per weights and cached
  on disk. Families and method stages without an ONNX path are refused, never run on torch instead.

This module imports neither torch, onnx nor onnxruntime.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Protocol

if TYPE_CHECKING:  # this module is imported by the command line's argument parsers: no torch at import
    import torch

    from clicksam.models.hooks import DecoderHooks

RUNTIMES = ("torch", "onnx")
ENCODER_PRECISIONS = ("fp32", "int8")


class Runtime(Protocol):
    """What a predictor calls (see the module docstring).

    Attributes:
        name: ``"torch"`` or ``"onnx"``.
        encoder_precision: ``"fp32"`` or ``"int8"``.
        postprocessor: an object with ``postprocess_masks(logits B×C×g×g, input_size (h, w),
            original_size (H, W)) -> B×C×H×W`` (the family's transforms for torch).
    """

    name: str
    encoder_precision: str
    postprocessor: Any

    def encode_features(self, model_input: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def decode(self, features: Mapping[str, torch.Tensor], points, boxes, mask_input, multimask_output: bool,
               hooks: "DecoderHooks", **options: Any): ...

    def signature(self) -> dict[str, str]: ...

    def stage_problem(self, spec: Any) -> Optional[str]: ...

    def stage_module(self, spec: Any, module: Any) -> Any: ...


class TorchRuntime:
    """The model run by PyTorch (the default; every family and method)."""

    name = "torch"
    encoder_precision = "fp32"

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def postprocessor(self) -> Any:
        return self.model.transforms()

    def encode_features(self, model_input: torch.Tensor) -> dict[str, torch.Tensor]:
        """B×3×S×S preprocessed images -> the model's feature bundle."""
        return self.model.encode_features(model_input)

    def decode(self, features, points, boxes, mask_input, multimask_output, hooks, **options):
        """``model.decode`` (see :meth:`clicksam.models.sam.Sam.decode`)."""
        return self.model.decode(features, points, boxes, mask_input, multimask_output, hooks, **options)

    def signature(self) -> dict[str, str]:
        """Entries added to the embedding-cache signature: none (torch fp32 is the reference)."""
        return {}

    def stage_problem(self, spec: Any) -> Optional[str]:
        """Why a method stage cannot run on this runtime (None: torch runs every stage)."""
        return None

    def stage_module(self, spec: Any, module: Any) -> Any:
        """What method ``spec``'s stage is built with: its torch module."""
        return module


def check_runtime(runtime: object, encoder_precision: object) -> tuple[str, str]:
    """Validate a (runtime, encoder precision) choice; ValueError in one line otherwise."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if encoder_precision not in ENCODER_PRECISIONS:
        raise ValueError(f"encoder_precision must be one of {', '.join(ENCODER_PRECISIONS)}, got {encoder_precision!r}")
    if runtime == "torch" and encoder_precision != "fp32":
        raise ValueError(f"encoder_precision={encoder_precision!r} runs on onnxruntime: use runtime='onnx' "
                         "(--runtime onnx), or encoder_precision='fp32' with torch")
    return str(runtime), str(encoder_precision)


def make_runtime(model: Any, runtime: str = "torch", encoder_precision: str = "fp32", *,
                 cache_dir: Optional[Any] = None, num_threads: Optional[int] = None) -> Any:
    """The runtime a predictor of ``model`` calls.

    Args:
        model: a clicksam model (see :func:`clicksam.build_sam`).
        runtime: ``"torch"`` or ``"onnx"``, or a runtime made earlier for ``model`` (returned as it
            is: a server shares one runtime, hence one set of onnxruntime sessions, between predictors).
        encoder_precision: ``"fp32"``, or ``"int8"`` (onnx only).
        cache_dir: onnx: root of the cache of exported graphs (default ``$CLICKSAM_CACHE`` or
            ``~/.cache/clicksam``).
        num_threads: onnx: intra-op threads (default: PyTorch's setting).
    Raises:
        ValueError: an unknown choice, or a model the onnx runtime cannot run (family, device).
        RuntimeError: onnx chosen without onnxruntime installed (the message names the extra).
    """
    if not isinstance(runtime, str):  # a runtime made earlier (one per model, shared by many predictors)
        if getattr(runtime, "model", None) is not model:
            raise ValueError("a runtime object passed to a predictor must have been made for the same model "
                             "(make_runtime(model, ...))")
        return runtime
    runtime, encoder_precision = check_runtime(runtime, encoder_precision)
    if runtime == "torch":
        return TorchRuntime(model)
    from clicksam.onnx.predictor_runtime import OnnxRuntime

    return OnnxRuntime(model, encoder_precision, cache_dir=cache_dir, num_threads=num_threads)
