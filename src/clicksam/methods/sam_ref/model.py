"""``SamRef``: SAM-REF's GlobalDiff + PatchDiff refiners and one refinement step (SPEC §5)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .config import SamRefConfig
from .prompt_maps import prompt_map, upsample_logits
from .refiner import DetailRefiner, RefinerContext
from .window import (Window, crop_embedding, crop_resize, detail_window, error_area, paste,
                     use_previous_base)


@dataclass
class SamRefOutput:
    """One SAM-REF step. Maps are B×1×S×S logits in the padded frame unless noted.

    Attributes:
        logits: the final mask M_t (threshold 0): the patch pasted on the selected base.
        global_logits: the GFR's gated output.
        global_refined: the GFR's own prediction M̄.
        global_error: the GFR's error map Ê_t (logits).
        sam_logits: SAM's logits upsampled to the frame (M_SAM).
        prompt: the B×3×S×S prompt map of the GFR (disks and SAM's logits).
        patch_logits: B×1×P×P, the LFR's gated output on the crop.
        patch_refined: B×1×P×P, the LFR's own prediction M̄ on the crop (before the gate).
        patch_error: B×1×P×P, the LFR's error map.
        patch_base: B×1×P×P, the crop of the base the patch was gated with.
        windows: per sample ``(x0, y0, x1, y1)`` of the detail window (exclusive ends).
        used_previous: bool B, whether the patch went on the previous final mask.
        error_area: int64 B, |σ(Ê_t) > 0.5| inside the image (the selector's numerator).
    """

    logits: torch.Tensor
    global_logits: torch.Tensor
    global_refined: torch.Tensor
    global_error: torch.Tensor
    sam_logits: torch.Tensor
    prompt: torch.Tensor
    patch_logits: torch.Tensor
    patch_refined: torch.Tensor
    patch_error: torch.Tensor
    patch_base: torch.Tensor
    windows: list[Window]
    used_previous: torch.Tensor
    error_area: torch.Tensor


def last_clicks(points: torch.Tensor | None, labels: torch.Tensor | None) -> list[tuple[float, float] | None]:
    """Per sample, the (x, y) of the last point labelled 1 or 0, or None (B from ``points``)."""
    if points is None or labels is None:
        return []
    result: list[tuple[float, float] | None] = []
    for pts, lbl in zip(points.tolist(), labels.tolist()):
        clicks = [p for p, lab in zip(pts, lbl) if int(lab) in (0, 1)]
        result.append((float(clicks[-1][0]), float(clicks[-1][1])) if clicks else None)
    return result


def _lap(timings: dict[str, float] | None, name: str, start: float) -> float:
    now = time.perf_counter()
    if timings is not None:
        timings[name] = now - start
    return now


def _input_sizes(input_size: tuple[int, int] | Sequence[tuple[int, int]], batch: int,
                 frame: int) -> list[tuple[int, int]]:
    if len(input_size) == 2 and not isinstance(input_size[0], (tuple, list)):
        sizes = [(int(input_size[0]), int(input_size[1]))] * batch  # type: ignore[index]
    else:
        sizes = [(int(h), int(w)) for h, w in input_size]  # type: ignore[misc]
    if len(sizes) != batch:
        raise ValueError(f"got {len(sizes)} input sizes for a batch of {batch}")
    for h, w in sizes:
        if not (1 <= h <= frame and 1 <= w <= frame):
            raise ValueError(f"input_size {(h, w)} must lie inside the {frame}×{frame} frame")
    return sizes


class SamRef(nn.Module):
    """SAM-REF's two refiners: ``gfr`` (GlobalDiff, whole frame) and ``lfr`` (PatchDiff).

    Args:
        config: the design; :class:`SamRefConfig` defaults when None.
    """

    def __init__(self, config: SamRefConfig | None = None) -> None:
        super().__init__()
        self.config = config or SamRefConfig()
        c = self.config
        self.gfr = DetailRefiner(c.width, c.num_blocks, c.stride, c.embed_dim, c.logit_scale,
                                 c.error_bias_init)
        self.lfr = DetailRefiner(c.patch_width, c.num_blocks, c.stride, c.embed_dim,
                                 c.logit_scale, c.error_bias_init)

    def global_context(self, image: torch.Tensor, embedding: torch.Tensor) -> RefinerContext:
        """The GFR's click-independent features (compute once per image, reuse per click).

        Args:
            image: B×3×S×S normalised, padded image (SAM's ``preprocess`` output).
            embedding: B×256×64×64 SAM image embedding.
        """
        if image.shape[-2:] != (self.config.image_size, self.config.image_size):
            raise ValueError(
                f"image must be B×3×{self.config.image_size}×{self.config.image_size} "
                f"(SAM's padded frame), got {tuple(image.shape)}"
            )
        return self.gfr.encode_context(image, embedding)

    def forward(
        self,
        image: torch.Tensor,
        embedding: torch.Tensor,
        sam_low_res_logits: torch.Tensor,
        points: torch.Tensor | None,
        labels: torch.Tensor | None,
        input_size: tuple[int, int] | Sequence[tuple[int, int]],
        previous_logits: torch.Tensor | None = None,
        previous_error_area: torch.Tensor | None = None,
        context: RefinerContext | None = None,
        windows: Sequence[Window] | None = None,
        timings: dict[str, float] | None = None,
    ) -> SamRefOutput:
        """One refinement step after SAM's decoder.

        Args:
            image: B×3×S×S normalised, padded image (S = 1024).
            embedding: B×256×64×64 SAM image embedding (the encoder's, not a refocused one).
            sam_low_res_logits: B×1×256×256 SAM logits of this click (padded frame).
            points: B×N×2 clicks (x, y) in the S×S frame (SAM's scaled points, no +0.5), or
                None; labels 1 positive, 0 negative, others ignored.
            labels: B×N, or None.
            input_size: (h, w) of the resized image inside the frame, one for all samples or
                one per sample.
            previous_logits: B×1×S×S final logits of the previous click, or None at the first.
            previous_error_area: int B, the previous click's ``error_area``, or None.
            context: :meth:`global_context` of this image, computed here when None.
            windows: detail windows to use instead of the rule (training with sampled windows).
            timings: when a dict, receives wall seconds of ``"context"`` (only if computed
                here), ``"gfr"`` (prompt map + GFR) and ``"lfr"`` (window, selector, crops, LFR,
                paste).
        Returns:
            :class:`SamRefOutput`.
        """
        c = self.config
        size = c.image_size
        batch = embedding.shape[0]
        sizes = _input_sizes(input_size, batch, size)
        sam_logits = upsample_logits(sam_low_res_logits, size)
        if sam_logits.shape[0] != batch:
            raise ValueError(f"sam_low_res_logits batch {sam_logits.shape[0]} != embedding batch {batch}")
        if previous_logits is not None and previous_logits.shape != sam_logits.shape:
            raise ValueError(
                f"previous_logits must be {tuple(sam_logits.shape)}, got {tuple(previous_logits.shape)}"
            )
        clock = time.perf_counter()
        if context is None:
            context = self.global_context(image, embedding)
            clock = _lap(timings, "context", clock)
        prompt = prompt_map(points, labels, sam_logits, c.click_radius)
        glob = self.gfr.refine(context, prompt, sam_logits)
        clock = _lap(timings, "gfr", clock)

        areas = torch.stack([error_area(glob.error_logits[b:b + 1], sizes[b])[0] for b in range(batch)])
        use_prev = use_previous_base(areas, previous_error_area, c.selector_threshold)
        if windows is None:
            clicks = last_clicks(points, labels) or [None] * batch
            new_masks = (glob.logits[:, 0] > 0).cpu().numpy()
            prev_masks = None if previous_logits is None else (previous_logits[:, 0] > 0).cpu().numpy()
            windows = [
                detail_window(new_masks[b], None if prev_masks is None else prev_masks[b],
                              clicks[b], sizes[b], c)
                for b in range(batch)
            ]
        else:
            windows = [tuple(int(v) for v in w) for w in windows]  # type: ignore[misc]
            if len(windows) != batch:
                raise ValueError(f"got {len(windows)} windows for a batch of {batch}")
            for (x0, y0, x1, y1), (h, w) in zip(windows, sizes):
                if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
                    raise ValueError(
                        f"window {(x0, y0, x1, y1)} must be (x0, y0, x1, y1) inside the "
                        f"{w}×{h} (W×H) image"
                    )
        if previous_logits is None:
            base = glob.logits
        else:
            base = torch.where(use_prev.to(glob.logits.device).view(-1, 1, 1, 1),
                               previous_logits, glob.logits)

        p = c.patch_size
        patch_context = self.lfr.encode_context(
            crop_resize(image, windows, p), crop_embedding(embedding, windows, p // c.stride, size)
        )
        patch_base = crop_resize(base, windows, p)
        # The LFR reads the mask it corrects: its prompt map holds the click disks and the
        # base's logits (SAM's logits are the GFR's third channel; the base may be the GFR's
        # output or the previous final mask, and a correction of a mask it cannot see is a guess).
        patch_prompt = torch.cat([crop_resize(prompt[:, :2], windows, p), patch_base], dim=1)
        patch = self.lfr.refine(patch_context, patch_prompt, patch_base)
        # Paste the LFR's correction σ(Ê_p)·Δ_p rather than its 256² logits, so the base keeps
        # its full-resolution detail wherever the patch refiner changes nothing.
        final = paste(base, patch.logits - patch_base, windows, add=True)
        _lap(timings, "lfr", clock)
        return SamRefOutput(
            logits=final, global_logits=glob.logits, global_refined=glob.refined_logits,
            global_error=glob.error_logits, sam_logits=sam_logits, prompt=prompt,
            patch_logits=patch.logits, patch_refined=patch.refined_logits, patch_error=patch.error_logits,
            patch_base=patch_base,
            windows=list(windows), used_previous=use_prev, error_area=areas,
        )


METADATA_KEY = "sam_ref_config"


def attach(model: nn.Module, config: SamRefConfig | None = None) -> SamRef:
    """Put a :class:`SamRef` at ``model.sam_ref`` (on the model's device) and return it.

    With ``config`` None an existing ``model.sam_ref`` is kept, else a default one is made
    for the model's frame (``model.image_size``) and embedding width. A ``config`` different
    from the attached one replaces it with a fresh, untrained module.
    """
    existing = getattr(model, "sam_ref", None)
    if isinstance(existing, SamRef) and (config is None or config == existing.config):
        return existing
    if config is None:
        changes = {}
        if isinstance(getattr(model, "image_size", None), int):
            changes["image_size"] = model.image_size
        embed_dim = getattr(getattr(model, "prompt_encoder", None), "embed_dim", None)
        if isinstance(embed_dim, int):
            changes["embed_dim"] = embed_dim
        config = SamRefConfig(**changes)
    module = SamRef(config)
    param = next(iter(model.parameters()), None)
    if param is not None:
        module = module.to(device=param.device)
    model.sam_ref = module
    return module


def save_sam_ref_file(path: "os.PathLike[str] | str", model: nn.Module,
                      extra_metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model.sam_ref`` to a clicksam method file, its config in the metadata (through
    :func:`file_metadata`, which ``save_method_file`` asks for every stage it writes)."""
    from clicksam.checkpoint import save_method_file

    module = getattr(model, "sam_ref", None)
    if not isinstance(module, SamRef):
        raise ValueError("the model has no SAM-REF stage (model.sam_ref); attach and train it first")
    return save_method_file(path, model, ["sam_ref."], ["sam-ref"], extra_metadata=extra_metadata)


def load_sam_ref_file(model: nn.Module, path: "os.PathLike[str] | str") -> dict[str, Any]:
    """Merge a SAM-REF method file onto ``model``, first attaching a refiner of its config.

    Returns the file's metadata. Unlike a plain ``load_method_file`` this also works for files
    trained with a non-default :class:`SamRefConfig`.
    """
    from clicksam.checkpoint import load_method_file, read_method_file

    _, meta = read_method_file(Path(path))
    config = config_from_metadata(meta)
    if config is not None:
        attach(model, config)
    return load_method_file(model, Path(path))


def file_metadata(module: SamRef) -> dict[str, Any]:
    """What a method file records about ``module``: its :class:`SamRefConfig`."""
    return {METADATA_KEY: module.config.to_dict()}


def attach_from_metadata(model: nn.Module, metadata: dict[str, Any]) -> SamRef:
    """Attach a :class:`SamRef` of the config a method file's metadata names (default if none).

    For ``clicksam.checkpoint.load_method_file``: call it instead of the plain ``attach`` so
    that files trained with a non-default :class:`SamRefConfig` load.
    """
    return attach(model, config_from_metadata(metadata))


def config_from_metadata(metadata: dict[str, Any]) -> SamRefConfig | None:
    """The :class:`SamRefConfig` stored in a method file's metadata, or None."""
    values = metadata.get(METADATA_KEY)
    if values is None:
        return None
    if not isinstance(values, dict):
        raise ValueError(f"method file metadata {METADATA_KEY!r} must be a JSON object, got {values!r}")
    return SamRefConfig.from_dict(values)
