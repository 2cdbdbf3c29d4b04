"""SAM-REF on ONNX: the refiners as three graphs of their own, run by onnxruntime.

Graphs (all one image at a time, S = the config's ``image_size``, P = ``patch_size``):

- ``context`` (once per image): ``image`` 1×3×S×S, ``image_embeddings`` 1×C×64×64 -> the GFR's
  click-independent features ``image_features`` and ``embed_features_<k>`` (1×width×S/4×S/4 each).
- ``global`` (per click, GlobalDiff): the context features, ``disks`` 1×2×S×S (click disks),
  ``low_res_logits`` 1×1×256×256 -> ``sam_logits``, ``global_logits``, ``error_logits`` (1×1×S×S).
- ``patch`` (per click, PatchDiff): ``crop`` 1×6×h×w (the detail window of the image, the disks and the
  base logits), ``base`` 1×1×S×S (the selected base), ``image_embeddings``, and per axis the taps
  (``*_index``/``*_weight``, n×K) of the crop's resampling to P×P, of the embedding's bilinear sampling
  at P/stride cells and of the patch's resampling back to h×w; ``paste_index`` 1×(h·w), the window's
  flat frame positions -> ``final_logits`` 1×1×S×S (the base with the LFR's correction added).

Between the graphs, numpy does what is box arithmetic and indexing: the click disks, the error area,
the selector, the detail window (:func:`~clicksam.methods.sam_ref.window.detail_window`), the window's
crop (slicing) and the interpolation taps of its resamplings (the weights ``F.interpolate`` uses,
antialiased when shrinking, as :func:`~clicksam.methods.sam_ref.window.crop_resize` and ``paste`` do,
and ``grid_sample``'s for :func:`~clicksam.methods.sam_ref.window.crop_embedding`).

- :func:`runtime_module` (``SamPredictor(..., runtime="onnx")``): :class:`OnnxSamRef`, called as
  :class:`~clicksam.methods.sam_ref.model.SamRef` is by the stage (``global_context`` and one step).
- :func:`export` (``clicksam export-onnx``): ``<decoder stem>.sam-ref-{context,global,patch}.onnx``.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .config import SamRefConfig
from .model import SamRef, last_clicks
from .prompt_maps import NEGATIVE_LABEL, POSITIVE_LABEL, upsample_logits
from .refiner import PointwiseConv, RefinerContext
from .window import Window, detail_window

REVISION = 4  # bump when a traced graph changes
GRAPHS = ("context", "global", "patch")
CONTEXT_INPUTS = ("image", "image_embeddings")
GLOBAL_OUTPUTS = ("sam_logits", "global_logits", "error_logits")
PATCH_INPUTS = ("crop", "base", "image_embeddings", "row_index", "row_weight", "col_index", "col_weight",
                "embed_row_index", "embed_row_weight", "embed_col_index", "embed_col_weight", "paste_row_index",
                "paste_row_weight", "paste_col_index", "paste_col_weight", "paste_index")
PATCH_OUTPUTS = ("final_logits",)


def _embed_names(config: SamRefConfig) -> list[str]:
    return [f"embed_features_{k}" for k in range(config.num_blocks + 1)]


def context_outputs(config: SamRefConfig) -> list[str]:
    """Output names of the ``context`` graph (``image_features``, then one ``embed_features_<k>`` per injection)."""
    return ["image_features", *_embed_names(config)]


# -- the traced modules ---------------------------------------------------------------------------------
class _Context(nn.Module):
    def __init__(self, sam_ref: SamRef) -> None:
        super().__init__()
        self.gfr = sam_ref.gfr

    def forward(self, image: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, ...]:
        context = self.gfr.encode_context(image, embedding)
        return (context.image_features, *context.embed_features)


class _Global(nn.Module):
    def __init__(self, sam_ref: SamRef) -> None:
        super().__init__()
        self.gfr = sam_ref.gfr
        self.size = sam_ref.config.image_size

    def forward(self, image_features: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *embed_features, disks, low_res = rest
        sam = upsample_logits(low_res, self.size)
        prompt = torch.cat([disks, sam], dim=1)
        out = self.gfr.refine(RefinerContext(image_features, list(embed_features)), prompt, sam)
        return sam, out.logits, out.error_logits


def _resample(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, axis: int) -> torch.Tensor:
    """Along ``axis`` (2 rows, 3 columns) of 1×C×H×W: output n = Σ_k weight[n, k] · x[index[n, k]]."""
    n, k = index.shape[0], index.shape[1]
    taps = torch.index_select(x, axis, index.reshape(-1))
    if axis == 2:  # whole rows: one batched (1×K)·(K×W) product per output row
        taps = taps.reshape(x.shape[0], x.shape[1], n, k, x.shape[3])
        return torch.matmul(weight.reshape(n, 1, k), taps).reshape(x.shape[0], x.shape[1], n, x.shape[3])
    taps = taps.reshape(x.shape[0], x.shape[1], x.shape[2], n, k)
    return (taps * weight).sum(dim=4)


class _Patch(nn.Module):
    def __init__(self, sam_ref: SamRef) -> None:
        super().__init__()
        self.lfr = sam_ref.lfr

    def forward(self, crop, base, embedding, row_index, row_weight, col_index, col_weight, embed_row_index,
                embed_row_weight, embed_col_index, embed_col_weight, paste_row_index, paste_row_weight,
                paste_col_index, paste_col_weight, paste_index):
        crop = _resample(_resample(crop, row_index, row_weight, 2), col_index, col_weight, 3)  # 1×6×P×P
        patch_base = crop[:, 5:6]
        embed = _resample(_resample(embedding, embed_row_index, embed_row_weight, 2), embed_col_index,
                          embed_col_weight, 3)  # crop_embedding's bilinear samples
        context = self.lfr.encode_context(crop[:, :3], embed)
        patch = self.lfr.refine(context, torch.cat([crop[:, 3:5], patch_base], dim=1), patch_base)
        delta = patch.logits - patch_base
        delta = _resample(_resample(delta, paste_row_index, paste_row_weight, 2), paste_col_index, paste_col_weight, 3)
        flat = base.reshape(1, -1)
        pasted = delta.reshape(1, -1) + torch.gather(flat, 1, paste_index)
        return torch.scatter(flat, 1, paste_index, pasted).reshape(base.shape)


@contextlib.contextmanager
def _pointwise_as_conv() -> Iterator[None]:
    """During an export: :class:`PointwiseConv` traced as the 1×1 ``Conv`` it is (same maths; its
    channels-last matrix product is a torch CPU speed-up that costs onnxruntime two transposes)."""
    saved = PointwiseConv.forward
    PointwiseConv.forward = nn.Conv2d.forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        PointwiseConv.forward = saved  # type: ignore[method-assign]


# -- numpy geometry between the graphs ------------------------------------------------------------------
def resample_taps(in_size: int, out_size: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """The taps of ``F.interpolate(mode="bilinear", align_corners=False, antialias=...)`` along one axis.

    Returns ``(index, weight)``, each ``out_size``×K (int64, float32): output n is
    Σ_k weight[n, k] · input[index[n, k]] (unused taps have weight 0 and index 0).
    """
    scale = in_size / out_size
    rows: list[list[tuple[int, float]]] = []
    if antialias:  # the separable triangle filter, widened by the scale when shrinking
        support = scale if scale >= 1.0 else 1.0
        invscale = 1.0 / scale if scale >= 1.0 else 1.0
        for n in range(out_size):
            centre = scale * (n + 0.5)
            lo = max(int(centre - support + 0.5), 0)
            hi = min(int(centre + support + 0.5), in_size)
            taps = [(j, max(0.0, 1.0 - abs((j - centre + 0.5) * invscale))) for j in range(lo, hi)]
            total = sum(w for _, w in taps)
            rows.append([(j, w / total if total != 0 else 0.0) for j, w in taps])
    else:
        for n in range(out_size):
            src = max(scale * (n + 0.5) - 0.5, 0.0)
            i0 = min(int(src), in_size - 1)
            step = 1 if i0 < in_size - 1 else 0
            frac = min(max(src - i0, 0.0), 1.0)
            rows.append([(i0, 1.0 - frac), (i0 + step, frac)])
    width = max(len(r) for r in rows)
    index = np.zeros((out_size, width), dtype=np.int64)
    weight = np.zeros((out_size, width), dtype=np.float32)
    for n, taps in enumerate(rows):
        for k, (j, w) in enumerate(taps):
            index[n, k], weight[n, k] = j, w
    return index, weight


def click_disks(points: Optional[torch.Tensor], labels: Optional[torch.Tensor], size: int, radius: float) -> np.ndarray:
    """One sample's click disks 1×2×S×S float32 (as :func:`~clicksam.methods.sam_ref.prompt_maps.click_disks`)."""
    maps = np.zeros((1, 2, size, size), dtype=np.float32)
    if points is None or labels is None or points.shape[1] == 0:
        return maps
    r = float(radius)
    reach = int(r) + 1
    for (x, y), label in zip(points[0].tolist(), labels[0].tolist()):
        channel = {POSITIVE_LABEL: 0, NEGATIVE_LABEL: 1}.get(int(label))
        if channel is None:
            continue
        x, y = float(np.float32(x)), float(np.float32(y))
        x0, x1 = max(int(x) - reach, 0), min(int(x) + reach + 1, size)
        y0, y1 = max(int(y) - reach, 0), min(int(y) + reach + 1, size)
        if x0 >= x1 or y0 >= y1:
            continue
        cols = np.arange(x0, x1, dtype=np.float32) - np.float32(x)
        rows = np.arange(y0, y1, dtype=np.float32) - np.float32(y)
        disk = (rows[:, None] ** 2 + cols[None, :] ** 2) <= np.float32(r * r)
        np.maximum(maps[0, channel, y0:y1, x0:x1], disk.astype(np.float32), out=maps[0, channel, y0:y1, x0:x1])
    return maps


def embedding_taps(start: int, stop: int, grid: int, size: int, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """One axis of :func:`~clicksam.methods.sam_ref.window.crop_embedding`'s bilinear sampling (border
    padding, ``align_corners=False``) of a ``size``-cell embedding: ``grid``×2 (index, weight) taps for the
    window ``[start, stop)`` of the frame (float32 arithmetic as ``grid_sample``'s)."""
    f = np.float32
    centres = (np.arange(grid, dtype=f) + f(0.5)) / f(grid)
    coords = (f(start) + centres * f(stop - start)) * f(2.0 / image_size) - f(1.0)  # normalised, as the grid
    pixels = np.clip(((coords + f(1)) * f(size) - f(1)) / f(2), f(0), f(size - 1))
    low = np.floor(pixels)
    frac = pixels - low
    index = np.stack([low, np.minimum(low + 1, size - 1)], axis=1).astype(np.int64)
    weight = np.stack([f(1) - frac, frac], axis=1).astype(f)
    return index, weight


def patch_feed(window: Window, image: np.ndarray, disks: np.ndarray, base: np.ndarray,
               config: SamRefConfig, embed_size: int) -> dict[str, np.ndarray]:
    """The ``patch`` graph's window inputs: the crop of image, disks and base (1×6×h×w) and the taps of
    the crop's resampling to P×P, the embedding's sampling and the patch's resampling back."""
    x0, y0, x1, y1 = window
    h, w, p = y1 - y0, x1 - x0, config.patch_size
    crop_aa = h > p or w > p  # crop_resize antialiases when shrinking
    paste_aa = h < p or w < p  # paste antialiases when shrinking the patch into the window
    crop = np.concatenate([a[:, :, y0:y1, x0:x1] for a in (image, disks, base)], axis=1)
    feed = {"crop": np.ascontiguousarray(crop, dtype=np.float32)}
    feed["row_index"], feed["row_weight"] = resample_taps(h, p, crop_aa)
    feed["col_index"], feed["col_weight"] = resample_taps(w, p, crop_aa)
    cells = p // config.stride
    feed["embed_row_index"], feed["embed_row_weight"] = embedding_taps(y0, y1, cells, embed_size, config.image_size)
    feed["embed_col_index"], feed["embed_col_weight"] = embedding_taps(x0, x1, cells, embed_size, config.image_size)
    feed["paste_row_index"], feed["paste_row_weight"] = resample_taps(p, h, paste_aa)
    feed["paste_col_index"], feed["paste_col_weight"] = resample_taps(p, w, paste_aa)
    rows, cols = np.arange(y0, y1, dtype=np.int64), np.arange(x0, x1, dtype=np.int64)
    feed["paste_index"] = (rows[:, None] * config.image_size + cols[None, :]).reshape(1, -1)
    return feed


def use_previous(area: int, previous_area: Optional[int], threshold: float) -> bool:
    """The dynamic selector of :func:`~clicksam.methods.sam_ref.window.use_previous_base`, for one sample."""
    if previous_area is None:
        return False
    if previous_area > 0:
        return float(area) > threshold * float(previous_area)
    return area > 0 or 1.0 > threshold


# -- export and cache ------------------------------------------------------------------------------------
def _example(sam_ref: SamRef, graph: str) -> tuple[tuple[torch.Tensor, ...], list[str], list[str], dict[str, Any]]:
    c = sam_ref.config
    s, g = c.image_size, torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, s, s, generator=g)
    embedding = torch.randn(1, c.embed_dim, 64, 64, generator=g)
    disks = torch.from_numpy(click_disks(torch.tensor([[[s / 3, s / 4]]]), torch.tensor([[1]]), s, c.click_radius))
    if graph == "context":
        return (image, embedding), list(CONTEXT_INPUTS), context_outputs(c), {}
    if graph == "global":
        with torch.no_grad():
            features = _Context(sam_ref)(image, embedding)
        return ((*features, disks, torch.randn(1, 1, 256, 256, generator=g)),
                [*context_outputs(c), "disks", "low_res_logits"], list(GLOBAL_OUTPUTS), {})
    window = (s // 8, s // 16, min(s // 8 + c.patch_size + c.patch_size // 2, s), min(s // 16 + c.patch_size // 2 + 3, s))
    base = torch.randn(1, 1, s, s, generator=g)
    feed = {k: torch.from_numpy(v) for k, v in
            patch_feed(window, image.numpy(), disks.numpy(), base.numpy(), c, embedding.shape[-1]).items()}
    inputs = (feed["crop"], base, embedding, *(feed[name] for name in PATCH_INPUTS[3:]))
    dynamic = {"crop": {2: "h", 3: "w"}, "row_index": {1: "kr"}, "row_weight": {1: "kr"},
               "col_index": {1: "kc"}, "col_weight": {1: "kc"}, "paste_row_index": {0: "h", 1: "kh"},
               "paste_row_weight": {0: "h", 1: "kh"}, "paste_col_index": {0: "w", 1: "kw"},
               "paste_col_weight": {0: "w", 1: "kw"}, "paste_index": {1: "hw"}}
    return inputs, list(PATCH_INPUTS), list(PATCH_OUTPUTS), dynamic


def write_graph(sam_ref: SamRef, graph: str, path: Path, opset: int) -> Path:
    """Trace one of SAM-REF's graphs (``"context"``, ``"global"``, ``"patch"``) into ``path`` (eval mode)."""
    from clicksam.onnx.export import trace_graph

    if graph not in GRAPHS:
        raise ValueError(f"SAM-REF has the graphs {GRAPHS}, not {graph!r}")
    module = {"context": _Context, "global": _Global, "patch": _Patch}[graph](sam_ref)
    was_training = sam_ref.training
    sam_ref.eval()
    try:
        inputs, input_names, output_names, dynamic = _example(sam_ref, graph)
    finally:
        sam_ref.train(was_training)
    return trace_graph(module, inputs, path, input_names=input_names, output_names=output_names,
                       dynamic_axes=dynamic, opset=opset, context=_pointwise_as_conv(),
                       metadata={"format": f"sam-ref-{graph}", "revision": str(REVISION),
                                 "config": repr(sam_ref.config.to_dict())})


def cached_graphs(sam_ref: SamRef, opset: int = 17, cache_dir: Optional[Any] = None,
                  log: Optional[Callable[[str], None]] = None) -> dict[str, Path]:
    """The three graphs from the graph cache (exported on first use, keyed by the refiners' weights)."""
    from clicksam.onnx.graph_cache import GRAPH_FILE, GraphKey, cached_graph, module_digest

    digest = module_digest(sam_ref)
    paths = {}
    for graph in GRAPHS:
        key = GraphKey.make(digest, f"sam-ref-{graph}", opset, revision=REVISION, **sam_ref.config.to_dict())
        paths[graph] = cached_graph(key, lambda folder, g=graph: write_graph(sam_ref, g, folder / GRAPH_FILE, opset),
                                    cache_dir, log)
    return paths


# -- the stand-in the stage runs -------------------------------------------------------------------------
@dataclass
class OnnxSamRefOutput:
    """What the stage reads of one step (one sample): ``logits`` and ``sam_logits`` 1×1×S×S,
    ``windows`` [(x0, y0, x1, y1)], ``used_previous`` [bool], ``error_area`` [int]."""

    logits: torch.Tensor
    sam_logits: torch.Tensor
    windows: list[Window]
    used_previous: list[bool]
    error_area: list[int]


def _array(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


class OnnxSamRef:
    """SAM-REF's refiners on onnxruntime, called as :class:`SamRef` is by the stage (one image at a time).

    Attributes:
        module: the torch SamRef the graphs were traced from; config: its :class:`SamRefConfig`;
        paths: the graph files by name.
    """

    def __init__(self, module: SamRef, paths: dict[str, Path], num_threads: Optional[int] = None) -> None:
        from clicksam.onnx.sessions import make_session

        self.module, self.config, self.paths = module, module.config, dict(paths)
        self.sessions = {name: make_session(Path(path), num_threads) for name, path in self.paths.items()}

    def global_context(self, image: torch.Tensor, embedding: torch.Tensor) -> dict[str, np.ndarray]:
        """The GFR's click-independent features of one image (1×3×S×S input, 1×C×64×64 embedding)."""
        s = self.config.image_size
        if image.shape != (1, 3, s, s):
            raise ValueError(f"image must be 1×3×{s}×{s} (SAM's padded frame, one image), got {tuple(image.shape)}")
        names = context_outputs(self.config)
        out = self.sessions["context"].run(names, {"image": _array(image), "image_embeddings": _array(embedding)})
        return dict(zip(names, out))

    def __call__(self, image: torch.Tensor, embedding: torch.Tensor, sam_low_res_logits: torch.Tensor,
                 points: Optional[torch.Tensor], labels: Optional[torch.Tensor], input_size: Sequence[int],
                 previous_logits: Optional[torch.Tensor] = None, previous_error_area: Optional[torch.Tensor] = None,
                 context: Optional[dict[str, np.ndarray]] = None,
                 timings: Optional[dict[str, float]] = None) -> OnnxSamRefOutput:
        """One refinement step (arguments as :meth:`SamRef.forward`, batch 1)."""
        if embedding.shape[0] != 1 or sam_low_res_logits.shape[0] != 1:
            raise ValueError(f"the ONNX SAM-REF refiners take one image at a time, got a batch of {embedding.shape[0]}")
        c = self.config
        h, w = int(input_size[0]), int(input_size[1])
        clock = time.perf_counter()
        if context is None:
            context = self.global_context(image, embedding)
        disks = click_disks(points, labels, c.image_size, c.click_radius)
        feed = {**context, "disks": disks, "low_res_logits": _array(sam_low_res_logits)}
        sam, glob, error = self.sessions["global"].run(list(GLOBAL_OUTPUTS), feed)
        now = time.perf_counter()
        if timings is not None:
            timings["gfr"] = now - clock
        clock = now
        area = int(np.count_nonzero(error[0, 0, :h, :w] > 0))
        prev_area = None if previous_error_area is None else int(previous_error_area.reshape(-1)[0])
        chosen_previous = use_previous(area, prev_area, c.selector_threshold)
        prev = None if previous_logits is None else _array(previous_logits)
        clicks = last_clicks(points, labels) or [None]
        window = detail_window(glob[0, 0] > 0, None if prev is None else prev[0, 0] > 0, clicks[0], (h, w), c)
        base = prev if (prev is not None and chosen_previous) else glob
        emb = _array(embedding)
        feed = {"base": base, "image_embeddings": emb,
                **patch_feed(window, _array(image), disks, base, c, emb.shape[-1])}
        final = self.sessions["patch"].run(list(PATCH_OUTPUTS), feed)[0]
        if timings is not None:
            timings["lfr"] = time.perf_counter() - clock
        return OnnxSamRefOutput(torch.from_numpy(final), torch.from_numpy(sam), [window], [chosen_previous], [area])


def runtime_module(module: SamRef, runtime: Any) -> OnnxSamRef:
    """The stand-in the SAM-REF stage is built with on the onnx runtime (``MethodSpec.onnx``)."""
    paths = cached_graphs(module, cache_dir=runtime.cache_dir, log=runtime.log)
    return OnnxSamRef(module, paths, runtime.num_threads)


def export(model: nn.Module, decoder_path: Path, opset: int) -> list[Path]:
    """``clicksam export-onnx``: write ``<decoder stem>.sam-ref-{context,global,patch}.onnx``."""
    from clicksam.io.atomic import atomic_write_bytes

    written = []
    for graph in GRAPHS:
        target = Path(decoder_path).with_name(f"{Path(decoder_path).stem}.sam-ref-{graph}.onnx")
        staging = target.with_name("." + target.name + ".tmp")
        write_graph(model.sam_ref, graph, staging, opset)
        try:
            atomic_write_bytes(target, staging.read_bytes())
        finally:
            staging.unlink(missing_ok=True)
        written.append(target)
    return written
