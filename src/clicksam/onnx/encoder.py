"""The image encoder on onnxruntime: export (fp32 or int8, cached on disk) and a runner.

    encoder = OnnxEncoder.from_model(model, precision="int8")   # exported once per weights, then cached
    embedding = encoder.encode(model.preprocess(resized))        # what model.encode(...) returns

The graph is ``model.image_encoder`` traced with PyTorch's TorchScript-based exporter (global
attention in blocks of query rows, see :mod:`clicksam.onnx.encoder_model`): input
``image`` B×3×S×S float32 (normalised and padded, as :meth:`clicksam.models.sam.Sam.preprocess`
returns it; B is dynamic, S = ``model.image_size``), output ``image_embeddings`` B×256×(S/16)×(S/16).
``precision="int8"`` derives a dynamically quantised copy of the fp32 graph (signed int8 MatMul
weights, see :mod:`clicksam.onnx.quantize`); both are cached under the weights' digest by
:func:`clicksam.onnx.graph_cache.cached_graph`.
"""
from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from clicksam.models.sam import Sam
from clicksam.onnx.encoder_model import EncoderExportModule
from clicksam.onnx.export import DEFAULT_OPSET, check_family, check_opset, import_onnx, import_onnxruntime, set_metadata
from clicksam.onnx.graph_cache import GRAPH_FILE, GraphKey, PathLike, cached_graph, save_graph
from clicksam.onnx.sessions import graph_metadata, make_session

INPUT_NAME, OUTPUT_NAME = "image", "image_embeddings"
PRECISIONS = ("fp32", "int8")
# Bump when the traced graph or the int8 recipe changes: cached graphs of other revisions are not reused.
EXPORT_REVISION = 1
# The int8 recipe, chosen by measurement (benchmarks/int8_encoder.py, docs/ONNX.md).
INT8_RECIPE = {"weight_type": "int8", "per_channel": True, "op_types": ("MatMul",)}


def check_precision(precision: object) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"encoder precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return str(precision)


def _stderr(message: str) -> None:
    print(f"clicksam: {message}", file=sys.stderr, flush=True)


def trace_encoder(model: Sam, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Trace ``model.image_encoder`` into the ONNX file ``path`` (no metadata yet).

    A graph over 2 GiB (ViT-H) is written by PyTorch with its tensors in separate files beside
    ``path``; :func:`finish_graph` gathers them into one.
    """
    if not isinstance(model, Sam):
        raise ValueError(f"model must be a clicksam Sam (see clicksam.build_sam), got {type(model).__name__}")
    opset = check_opset(opset)
    dtype = model.image_encoder.patch_embed.proj.weight.dtype
    if dtype != torch.float32:
        raise ValueError(f"the encoder weights are {dtype}; export a float32 model (model.float()) and ask for precision='int8' to quantise")
    size = model.image_size
    example = torch.zeros(1, 3, size, size, device=model.device)
    was_training = model.image_encoder.training
    model.image_encoder.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # see clicksam.onnx.export.trace_decoder for why the TorchScript exporter is used
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                EncoderExportModule(model.image_encoder), (example,), str(path), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, do_constant_folding=True,
            )
    finally:
        model.image_encoder.train(was_training)
    return path


def finish_graph(source: Path, target: Path, metadata: dict[str, str]) -> Path:
    """Load ``source`` (with its external tensors), add ``metadata``, check it with ``onnx.checker``
    and save it as ``target`` (tensors beside it in one file when the graph is large)."""
    onnx = import_onnx()
    proto = set_metadata(onnx.load(str(source)), metadata)
    save_graph(proto, target)
    try:
        onnx.checker.check_model(str(target))
    except onnx.checker.ValidationError as exc:
        raise RuntimeError(f"the exported encoder graph does not pass onnx.checker: {exc}") from exc
    return target


def encoder_metadata(model: Sam, digest: str, opset: int, precision: str) -> dict[str, str]:
    recipe = INT8_RECIPE if precision == "int8" else None
    return {
        "format": "sam-encoder",
        "model": getattr(model, "model_name", "custom"),
        "weights_digest": digest,
        "image_size": str(model.image_size),
        "opset": str(opset),
        "precision": precision,
        "quantization": "none" if recipe is None else "dynamic " + ", ".join(f"{k}={v}" for k, v in recipe.items()),
        "revision": str(EXPORT_REVISION),
    }


def export_encoder(
    model: Sam,
    precision: str = "fp32",
    *,
    opset: int = DEFAULT_OPSET,
    cache_dir: Optional[PathLike] = None,
    log: Optional[Callable[[str], None]] = _stderr,
) -> Path:
    """The ONNX image encoder of ``model``, exported on first use and cached on disk.

    Args:
        model: a float32 :class:`~clicksam.models.sam.Sam` (any size; ``tiny`` in tests).
        precision: ``"fp32"`` (matches ``model.encode`` to float round-off) or ``"int8"``
            (dynamic int8 MatMul weights: several times faster on CPUs with VNNI/AMX, embeddings a
            little different; see ``docs/ONNX.md`` for the measured agreement).
        opset: ONNX opset (14-20).
        cache_dir: cache root (default ``$CLICKSAM_CACHE`` or ``~/.cache/clicksam``).
        log: called with one line when a graph is (re-)exported (default: stderr); None is silent.
    Returns:
        the path of the cached graph (load it by path; see :class:`OnnxEncoder`).
    """
    from clicksam.cache import encoder_digest

    precision = check_precision(precision)
    opset = check_opset(opset)
    if getattr(model, "family", None) is not None:
        check_family(model.family, getattr(model, "model_name", "?"))
    if not isinstance(model, Sam):
        raise ValueError(f"model must be a clicksam Sam (see clicksam.build_sam), got {type(model).__name__}")
    import_onnx()
    if precision == "int8":
        import_onnxruntime()  # fail before a long export when the quantiser is missing
    digest = encoder_digest(model)
    fp32_key = GraphKey.make(digest, "encoder-fp32", opset, revision=EXPORT_REVISION)

    def build_fp32(folder: Path) -> None:
        trace_dir = folder / "trace"
        trace_dir.mkdir()
        traced = trace_encoder(model, trace_dir / GRAPH_FILE, opset)
        finish_graph(traced, folder / GRAPH_FILE, encoder_metadata(model, digest, opset, "fp32"))
        shutil.rmtree(trace_dir)

    fp32_path = cached_graph(fp32_key, build_fp32, cache_dir, log)
    if precision == "fp32":
        return fp32_path

    def build_int8(folder: Path) -> None:
        from clicksam.onnx.quantize import quantize_dynamic_file

        work = folder / "quantize"
        work.mkdir()
        quantized = quantize_dynamic_file(fp32_path, work / GRAPH_FILE, **INT8_RECIPE)
        finish_graph(quantized, folder / GRAPH_FILE, encoder_metadata(model, digest, opset, "int8"))
        shutil.rmtree(work)

    int8_key = GraphKey.make(digest, "encoder-int8", opset, revision=EXPORT_REVISION,
                             recipe=sorted(INT8_RECIPE.items()))
    return cached_graph(int8_key, build_int8, cache_dir, log)


class OnnxEncoder:
    """An exported image encoder run with onnxruntime; :meth:`encode` is ``Sam.encode``.

    Args:
        path: a graph written by :func:`export_encoder`.
        num_threads: intra-op threads (default: PyTorch's setting, see :mod:`clicksam.onnx.sessions`).
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).

    Attributes:
        image_size: S, the side of the square input.
        precision: ``"fp32"`` or ``"int8"`` (from the file's metadata).
        metadata: the file's ``clicksam.*`` metadata.
    """

    def __init__(self, path: PathLike, num_threads: Optional[int] = None, providers: Optional[Sequence[str]] = None) -> None:
        self.path = Path(path)
        self.session = make_session(self.path, num_threads, providers)
        inputs, outputs = self.session.get_inputs(), [o.name for o in self.session.get_outputs()]
        if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in outputs or len(inputs[0].shape) != 4:
            raise RuntimeError(
                f"{self.path} is not a SAM image encoder export: inputs {[i.name for i in inputs]}, outputs {outputs}; "
                f"expected one 4-d input {INPUT_NAME!r} and an output {OUTPUT_NAME!r}"
            )
        shape = inputs[0].shape
        if not all(isinstance(d, int) for d in shape[1:]) or shape[1] != 3 or shape[2] != shape[3]:
            raise RuntimeError(f"{self.path}: the encoder input must be Bx3xSxS with a fixed S, the file says {shape}")
        self.image_size = int(shape[2])
        self.metadata = graph_metadata(self.session)
        self.precision = self.metadata.get("precision", "fp32")

    @classmethod
    def from_model(
        cls,
        model: Sam,
        precision: str = "fp32",
        num_threads: Optional[int] = None,
        *,
        opset: int = DEFAULT_OPSET,
        cache_dir: Optional[PathLike] = None,
        log: Optional[Callable[[str], None]] = _stderr,
    ) -> "OnnxEncoder":
        """The encoder of ``model`` at ``precision``, exported (and cached) by :func:`export_encoder`."""
        return cls(export_encoder(model, precision, opset=opset, cache_dir=cache_dir, log=log), num_threads)

    def run(self, images: Any) -> np.ndarray:
        """B×3×S×S float32 array (normalised, padded) -> B×256×(S/16)×(S/16) float32 embeddings."""
        array = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
        size = self.image_size
        if array.ndim != 4 or array.shape[1:] != (3, size, size) or array.shape[0] < 1:
            raise ValueError(
                f"the encoder takes a Bx3x{size}x{size} preprocessed image (Sam.preprocess), got shape {array.shape}"
            )
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``Sam.encode`` on onnxruntime: B×3×S×S preprocessed tensor -> B×256×(S/16)×(S/16) float32,
        on ``x``'s device."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"encode takes a torch tensor (use run() for numpy arrays), got {type(x).__name__}")
        embedding = self.run(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(embedding).to(x.device)
