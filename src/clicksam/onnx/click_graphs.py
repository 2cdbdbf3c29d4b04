"""The graphs of one click on onnxruntime: prompt encoder + mask decoder, and the upscaling to the
image size; exported once per weights and cached (:func:`clicksam.onnx.graph_cache.cached_graph`).

- ``click-decoder``: :class:`ClickDecoderModule`. Inputs ``image_embeddings`` 1×256×64×64,
  ``point_coords`` 1×N×2 (x, y) in the model frame, ``point_labels`` 1×N float (-1 padding, 0
  negative, 1 positive, 2/3 box corners), ``mask_input`` 1×1×256×256, ``has_mask_input`` 1 float;
  outputs ``low_res_masks`` 1×4×256×256, ``iou_predictions`` 1×4, ``mask_tokens`` 1×4×256 — all four
  tokens, as :meth:`clicksam.models.mask_decoder.MaskDecoder.predict_masks` returns them, so the
  predictor's own selection (multimask or single) applies unchanged. N is dynamic.
- ``upscale``: :class:`UpscaleModule`. Inputs ``logits`` B×C×g×g over the padded S×S frame,
  ``input_size`` (h, w) and ``original_size`` (H, W) as int64; output ``masks`` B×C×H×W — what
  :meth:`clicksam.transforms.SamTransforms.postprocess_masks` computes. Every axis is dynamic.

The graphs read SAM's decoder only (the families with more image features are refused before).
"""
from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.models.sam import Sam
from clicksam.onnx.export import DEFAULT_OPSET, check_family, check_opset, import_onnx, set_metadata
from clicksam.onnx.graph_cache import GRAPH_FILE, GraphKey, PathLike, cached_graph, save_graph
from clicksam.onnx.model import DecoderExportModule

DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input")
DECODER_OUTPUTS = ("low_res_masks", "iou_predictions", "mask_tokens")
UPSCALE_INPUTS = ("logits", "input_size", "original_size")
UPSCALE_OUTPUTS = ("masks",)
# Bump when a traced graph changes: cached graphs of other revisions are not reused.
CLICK_REVISION = 1
DECODER_PREFIXES = ("prompt_encoder.", "mask_decoder.")


def decoder_digest(model: Sam) -> str:
    """sha256 over the prompt encoder's and mask decoder's tensors (names, shapes, float32 bytes):
    what the click-decoder graph is made from."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(DECODER_PREFIXES):
            h.update(f"{name}:{tuple(tensor.shape)}".encode())
            h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return f"decoder-params:{h.hexdigest()}"


class ClickDecoderModule(DecoderExportModule):
    """Prompt encoder + mask decoder with all four tokens and their transformer outputs (see the
    module docstring); the weights are the model's, shared.

    Args:
        model: the SAM model.
        hooks: decoder hooks traced into the graph (a method stage's key/value plugins; each plugin
            an ``nn.Module``, registered here so that its weights are the graph's).
    """

    def __init__(self, model: Sam, hooks: DecoderHooks = NO_HOOKS) -> None:
        super().__init__(model, hooks=hooks)

    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor,
                mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sparse = self.embed_points(point_coords, point_labels)
        dense = self.embed_mask(mask_input, has_mask_input)
        return self.mask_decoder.predict_masks(image_embeddings, self.dense_pe, sparse, dense, self.hooks)


def hooks_problem(hooks: DecoderHooks) -> Optional[str]:
    """Why ``hooks`` cannot be traced into a click-decoder graph (None when they can)."""
    odd = sorted(b for b, p in hooks.kv_plugins.items() if not isinstance(p, nn.Module))
    if odd:
        return f"the key/value plugin of two-way block(s) {odd} is not an nn.Module, so it cannot be traced"
    return None


def hooks_digest(hooks: DecoderHooks) -> str:
    """What the traced hooks depend on: per block, the plugin's class and its tensors."""
    h = hashlib.sha256()
    for block, plugin in sorted(hooks.kv_plugins.items()):
        h.update(f"{block}:{type(plugin).__module__}.{type(plugin).__qualname__}".encode())
        for name, tensor in sorted(plugin.state_dict().items()):
            h.update(f"{name}:{tuple(tensor.shape)}".encode())
            h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class UpscaleModule(nn.Module):
    """Frame logits -> image-size logits: upsample to S×S, crop the resized image, resize to (H, W)."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        self.image_size = int(image_size)

    def forward(self, logits: torch.Tensor, input_size: torch.Tensor, original_size: torch.Tensor) -> torch.Tensor:
        size = self.image_size
        masks = F.interpolate(logits, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, size=(original_size[0], original_size[1]), mode="bilinear", align_corners=False)


def _trace(module: nn.Module, inputs: tuple, path: Path, input_names, output_names, dynamic_axes, opset: int) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, inputs, str(path), dynamo=False, opset_version=opset, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes, do_constant_folding=True)


def _finish(traced: Path, target: Path, metadata: dict[str, str]) -> None:
    onnx = import_onnx()
    proto = set_metadata(onnx.load(str(traced)), metadata)
    onnx.checker.check_model(proto)
    save_graph(proto, target)


def export_click_decoder(model: Sam, hooks: DecoderHooks = NO_HOOKS, *, opset: int = DEFAULT_OPSET,
                         cache_dir: Optional[PathLike] = None, log: Optional[Callable[[str], None]] = None) -> Path:
    """The cached click-decoder graph of ``model`` with ``hooks`` traced in (exported on first use;
    keyed by the decoder's and the hooks' weights). Returns its path.

    Raises:
        ValueError: a family without an ONNX path, or hooks that cannot be traced.
    """
    check_family(getattr(model, "family", "sam"), getattr(model, "model_name", "?"))
    problem = hooks_problem(hooks)
    if problem is not None:
        raise ValueError(f"runtime='onnx': {problem}; use runtime='torch'")
    opset = check_opset(opset)
    import_onnx()
    digest = decoder_digest(model)
    key = GraphKey.make(digest, "click-decoder", opset, revision=CLICK_REVISION,
                        hooks=hooks_digest(hooks) if hooks.kv_plugins else "")

    def build(folder: Path) -> None:
        module = ClickDecoderModule(model, hooks).eval()
        grid = model.prompt_encoder.image_embedding_size[0]
        generator = torch.Generator().manual_seed(0)
        inputs = (torch.randn(1, module.embed_dim, grid, grid, generator=generator),
                  torch.randint(0, model.image_size, (1, 3, 2), generator=generator).float(),
                  torch.tensor([[1.0, 0.0, -1.0]]),
                  torch.randn(1, 1, 4 * grid, 4 * grid, generator=generator),
                  torch.tensor([1.0]))
        inputs = tuple(t.to(model.device) for t in inputs)
        work = folder / "trace"
        work.mkdir()
        _trace(module, inputs, work / GRAPH_FILE, DECODER_INPUTS, DECODER_OUTPUTS,
               {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}, opset)
        _finish(work / GRAPH_FILE, folder / GRAPH_FILE,
                {"format": "sam-click-decoder", "model": getattr(model, "model_name", "custom"), "weights_digest": digest,
                 "image_size": str(model.image_size), "opset": str(opset), "revision": str(CLICK_REVISION)})
        shutil.rmtree(work)

    return cached_graph(key, build, cache_dir, log)


def export_upscale(image_size: int, *, opset: int = DEFAULT_OPSET, cache_dir: Optional[PathLike] = None,
                   log: Optional[Callable[[str], None]] = None) -> Path:
    """The cached upscaling graph for an S×S frame (it has no weights). Returns its path."""
    opset = check_opset(opset)
    import_onnx()
    key = GraphKey.make(f"frame:{int(image_size)}", "upscale", opset, revision=CLICK_REVISION)

    def build(folder: Path) -> None:
        inputs = (torch.randn(1, 2, 256, 256), torch.tensor([768, 1024]), torch.tensor([600, 800]))
        work = folder / "trace"
        work.mkdir()
        _trace(UpscaleModule(image_size).eval(), inputs, work / GRAPH_FILE, UPSCALE_INPUTS, UPSCALE_OUTPUTS,
               {"logits": {0: "batch", 1: "masks", 2: "grid_h", 3: "grid_w"},
                "masks": {0: "batch", 1: "masks", 2: "height", 3: "width"}}, opset)
        _finish(work / GRAPH_FILE, folder / GRAPH_FILE,
                {"format": "sam-upscale", "image_size": str(int(image_size)), "opset": str(opset),
                 "revision": str(CLICK_REVISION)})
        shutil.rmtree(work)

    return cached_graph(key, build, cache_dir, log)
