"""FocSAM on ONNX: the FocusRefiner as a graph of its own, run by onnxruntime.

- :func:`export` (``clicksam export-onnx``): writes ``<decoder stem>.focsam-refiner.onnx`` beside the
  decoder: inputs ``image_embeddings`` 1×256×64×64, ``coarse_logits`` 1×1×256×256 (the coarse
  single-mask low-res logits), ``mask_token`` 1×1×256 (the decoder's single-mask token output);
  output ``refined_embeddings`` 1×256×64×64 — the refocused embedding F_r.
- :func:`runtime_module` (``SamPredictor(..., runtime="onnx")``): :class:`OnnxFocusRefiner`, called as
  the FocusRefiner is (``refiner(embedding, coarse_logits, mask_token)``), its graph exported once per
  refiner weights and cached (:mod:`clicksam.onnx.graph_cache`).

The traced graph holds the whole refocus: the focus box from the logits, the window selection and the
Dwin-MSA blocks. Two kernels take their ONNX form during an export only (same maths): the pixel MLP
of P-DyReLU as the dense MLP (ONNX has no searchsorted) — see ``scalar_mlp``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from clicksam.methods.focsam.refiner import FocusRefiner

INPUTS = ("image_embeddings", "coarse_logits", "mask_token")
OUTPUTS = ("refined_embeddings",)
SUFFIX = ".focsam-refiner.onnx"
REVISION = 1  # bump when the traced graph changes


class _Refocus(nn.Module):
    def __init__(self, refiner: FocusRefiner) -> None:
        super().__init__()
        self.refiner = refiner

    def forward(self, image_embeddings: torch.Tensor, coarse_logits: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
        return self.refiner(image_embeddings, coarse_logits, mask_token)


def example_inputs(refiner: FocusRefiner, grid: int) -> tuple[torch.Tensor, ...]:
    """Tracing inputs: coarse logits with a positive region, so the traced path selects windows
    (a step always selects some: an empty mask focuses on the whole frame)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.full((1, 1, 4 * grid, 4 * grid), -4.0)
    logits[..., grid : 2 * grid, grid : 3 * grid] = 4.0
    device = refiner.embed_proj.weight.device
    return tuple(t.to(device) for t in (torch.randn(1, refiner.embed_dim, grid, grid, generator=g), logits,
                                        torch.randn(1, 1, refiner.embed_dim, generator=g)))


def write_graph(refiner: FocusRefiner, path: Path, grid: int, opset: int) -> Path:
    """Trace ``refiner`` into the ONNX file ``path`` (eval mode; metadata ``clicksam.format``)."""
    from clicksam.onnx.export import trace_graph

    return trace_graph(_Refocus(refiner), example_inputs(refiner, grid), path, input_names=list(INPUTS),
                       output_names=list(OUTPUTS), opset=opset,
                       metadata={"format": "focsam-refiner", "grid": str(grid), "revision": str(REVISION)})


def cached_refiner_graph(refiner: FocusRefiner, grid: int, opset: int = 17, cache_dir: Optional[Any] = None,
                         log: Optional[Callable[[str], None]] = None) -> Path:
    """The refiner's graph from the graph cache (exported on first use, keyed by its weights)."""
    from clicksam.onnx.graph_cache import GRAPH_FILE, GraphKey, cached_graph, module_digest

    key = GraphKey.make(module_digest(refiner), "focsam-refiner", opset, revision=REVISION, grid=grid,
                        expand_ratio=refiner.expand_ratio, window=refiner.window_size, frame=refiner.frame_size)
    return cached_graph(key, lambda folder: write_graph(refiner, folder / GRAPH_FILE, grid, opset), cache_dir, log)


class OnnxFocusRefiner:
    """The FocusRefiner's graph on onnxruntime, called as the refiner is (one image at a time).

    Attributes:
        refiner: the torch FocusRefiner the graph was traced from; path: the graph file.
    """

    def __init__(self, refiner: FocusRefiner, path: Path, num_threads: Optional[int] = None) -> None:
        from clicksam.onnx.sessions import make_session

        self.refiner = refiner
        self.path = Path(path)
        self.session = make_session(self.path, num_threads)

    def __call__(self, image_embedding: torch.Tensor, coarse_logits: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
        """1×C×H×W embedding, 1×1×256×256 coarse logits, 1×1×C (or 1×C) token -> 1×C×H×W F_r."""
        if image_embedding.shape[0] != 1:
            raise ValueError(f"the ONNX FocSAM refiner takes one image at a time, got a batch of {image_embedding.shape[0]}")
        feed = {"image_embeddings": image_embedding.detach().float().cpu().numpy(),
                "coarse_logits": coarse_logits.detach().float().cpu().numpy(),
                "mask_token": mask_token.detach().float().cpu().numpy().reshape(1, 1, -1)}
        out = self.session.run(list(OUTPUTS), {k: np.ascontiguousarray(v) for k, v in feed.items()})[0]
        return torch.from_numpy(out).to(image_embedding.device, image_embedding.dtype)


def runtime_module(refiner: FocusRefiner, runtime: Any) -> OnnxFocusRefiner:
    """The stand-in the FocSAM stage is built with on the onnx runtime (``MethodSpec.onnx``)."""
    grid = int(runtime.model.prompt_encoder.image_embedding_size[0])
    path = cached_refiner_graph(refiner, grid, cache_dir=runtime.cache_dir, log=runtime.log)
    return OnnxFocusRefiner(refiner, path, runtime.num_threads)


def export(model: nn.Module, decoder_path: Path, opset: int) -> list[Path]:
    """``clicksam export-onnx``: write ``<decoder stem>.focsam-refiner.onnx``; returns ``[path]``."""
    from clicksam.io.atomic import atomic_write_bytes

    grid = int(model.prompt_encoder.image_embedding_size[0])
    target = Path(decoder_path).with_name(Path(decoder_path).stem + SUFFIX)
    staging = target.with_name("." + target.name + ".tmp")
    write_graph(model.focus_refiner, staging, grid, opset)
    try:
        atomic_write_bytes(target, staging.read_bytes())
    finally:
        staging.unlink(missing_ok=True)
    return [target]
