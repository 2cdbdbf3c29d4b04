"""PatchDiff's detail window, cropping and pasting, and the dynamic selector (SPEC §5).

Windows are ``(x0, y0, x1, y1)`` integer pixel boxes in the padded 1024 frame, ``x1``/``y1``
exclusive; pixel column ``j`` covers ``[j, j + 1)``. The image occupies the top-left
``input_size = (h, w)`` of the frame; windows never leave it.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .config import SamRefConfig

Window = tuple[int, int, int, int]


def _as_bool_array(mask: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be an H×W mask, got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def largest_changed_region(
    new_mask: np.ndarray | torch.Tensor, previous_mask: np.ndarray | torch.Tensor
) -> Window | None:
    """Bounding box of the largest 8-connected region where two H×W bool masks differ.

    Returns ``(x0, y0, x1, y1)`` (exclusive ends), or None when the masks are equal. Ties in
    area go to the region whose first pixel comes first in row-major order.
    """
    new = _as_bool_array(new_mask, "new_mask")
    prev = _as_bool_array(previous_mask, "previous_mask")
    if new.shape != prev.shape:
        raise ValueError(f"mask shapes differ: new {new.shape} vs previous {prev.shape}")
    changed = np.not_equal(new, prev).astype(np.uint8)
    if not changed.any():
        return None
    count, _, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
    areas = stats[1:count, cv2.CC_STAT_AREA]
    best = 1 + int(np.argmax(areas))  # label 0 is the unchanged background
    x, y = int(stats[best, cv2.CC_STAT_LEFT]), int(stats[best, cv2.CC_STAT_TOP])
    w, h = int(stats[best, cv2.CC_STAT_WIDTH]), int(stats[best, cv2.CC_STAT_HEIGHT])
    return (x, y, x + w, y + h)


def mask_box(mask: np.ndarray | torch.Tensor) -> Window | None:
    """Bounding box ``(x0, y0, x1, y1)`` (exclusive ends) of an H×W bool mask, None if empty."""
    m = _as_bool_array(mask, "mask")
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return None
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _expand_and_clip(
    cx: float, cy: float, width: float, height: float, input_size: tuple[int, int],
    config: SamRefConfig,
) -> Window:
    """Expand a centred box by ``window_expansion``, raise it to ``window_min_size``, clip."""
    h_img, w_img = input_size
    # A centre on the padding (a click outside the image) moves to the nearest image border.
    cx, cy = min(max(cx, 0.0), float(w_img)), min(max(cy, 0.0), float(h_img))
    width = max(width * config.window_expansion, float(config.window_min_size))
    height = max(height * config.window_expansion, float(config.window_min_size))
    x0 = max(int(math.floor(cx - width / 2)), 0)
    y0 = max(int(math.floor(cy - height / 2)), 0)
    x1 = min(int(math.ceil(cx + width / 2)), w_img)
    y1 = min(int(math.ceil(cy + height / 2)), h_img)
    return (x0, y0, x1, y1)


def detail_window(
    new_mask: np.ndarray | torch.Tensor,
    previous_mask: np.ndarray | torch.Tensor | None,
    last_click: tuple[float, float] | None,
    input_size: tuple[int, int],
    config: SamRefConfig | None = None,
) -> Window:
    """PatchDiff's detail window in the padded frame.

    The bounding box of the largest connected region where ``new_mask`` and ``previous_mask``
    differ (inside the image); with no such region, a square of side
    ``fallback_scale · max(object h, w)`` (object = ``new_mask``'s box) centred on the last
    click. Then expanded by ``window_expansion`` about its centre, each side raised to at
    least ``window_min_size`` and clipped to the image.

    Args:
        new_mask: S×S bool, the new global mask (GFR logits > 0) in the padded frame.
        previous_mask: S×S bool, the previous final mask; None at the first click (treated as
            empty, so the window covers the largest part of the new mask).
        last_click: (x, y) of the last click in the padded frame (SAM's scaled point, without
            the +0.5), or None (the object's centre, or the image's when the mask is empty).
        input_size: (h, w) of the image inside the padded frame.
        config: window rule; defaults to :class:`SamRefConfig`'s.
    Returns:
        ``(x0, y0, x1, y1)`` ints with ``0 <= x0 < x1 <= w`` and ``0 <= y0 < y1 <= h``.
    """
    config = config or SamRefConfig()
    h_img, w_img = int(input_size[0]), int(input_size[1])
    new = _as_bool_array(new_mask, "new_mask")
    if h_img < 1 or w_img < 1 or h_img > new.shape[0] or w_img > new.shape[1]:
        raise ValueError(f"input_size {input_size} must lie inside the mask frame {new.shape}")
    new = new[:h_img, :w_img]
    prev = (np.zeros_like(new) if previous_mask is None
            else _as_bool_array(previous_mask, "previous_mask")[:h_img, :w_img])
    region = largest_changed_region(new, prev)
    if region is not None:
        x0, y0, x1, y1 = region
        return _expand_and_clip((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0,
                                (h_img, w_img), config)
    obj = mask_box(new)
    side = 0.0 if obj is None else config.fallback_scale * max(obj[2] - obj[0], obj[3] - obj[1])
    if last_click is not None:
        cx, cy = float(last_click[0]) + 0.5, float(last_click[1]) + 0.5  # pixel centre
    elif obj is not None:
        cx, cy = (obj[0] + obj[2]) / 2, (obj[1] + obj[3]) / 2
    else:
        cx, cy = w_img / 2, h_img / 2
    return _expand_and_clip(cx, cy, side, side, (h_img, w_img), config)


def crop_resize(x: torch.Tensor, windows: Sequence[Window], size: int) -> torch.Tensor:
    """Crop each sample's window from B×C×S×S and resize it to B×C×size×size.

    Bilinear (``align_corners=False``), antialiased when shrinking, differentiable.
    """
    if x.dim() != 4 or len(windows) != x.shape[0]:
        raise ValueError(f"need one window per sample: x {tuple(x.shape)}, {len(windows)} windows")
    crops = []
    for b, (x0, y0, x1, y1) in enumerate(windows):
        crop = x[b:b + 1, :, y0:y1, x0:x1]
        shrink = (y1 - y0) > size or (x1 - x0) > size
        crops.append(F.interpolate(crop, size=(size, size), mode="bilinear",
                                   align_corners=False, antialias=shrink))
    return torch.cat(crops, dim=0)


def crop_embedding(
    embedding: torch.Tensor, windows: Sequence[Window], grid: int, image_size: int = 1024
) -> torch.Tensor:
    """Sample SAM's embedding B×C×h×w (covering the S×S frame) on a grid×grid lattice per window.

    Cell k of the output samples the embedding at the centre of the window's k-th of ``grid``
    equal parts (bilinear, ``align_corners=False`` convention, borders replicated).
    """
    if embedding.dim() != 4 or len(windows) != embedding.shape[0]:
        raise ValueError(
            f"need one window per sample: embedding {tuple(embedding.shape)}, {len(windows)} windows"
        )
    centres = (torch.arange(grid, device=embedding.device, dtype=embedding.dtype) + 0.5) / grid
    grids = []
    for x0, y0, x1, y1 in windows:
        xs = (x0 + centres * (x1 - x0)) * (2.0 / image_size) - 1.0
        ys = (y0 + centres * (y1 - y0)) * (2.0 / image_size) - 1.0
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grids.append(torch.stack([gx, gy], dim=-1))
    return F.grid_sample(embedding, torch.stack(grids), mode="bilinear",
                         padding_mode="border", align_corners=False)


def paste(
    base: torch.Tensor, patches: torch.Tensor, windows: Sequence[Window], add: bool = False
) -> torch.Tensor:
    """Resize each B×C×P×P patch to its window and paste it into a copy of B×C×S×S ``base``.

    With ``add`` the resized patch is added to the window's content instead of replacing it
    (pasting a correction: the base keeps its full-resolution detail where the patch is 0).
    """
    if base.shape[:2] != patches.shape[:2] or len(windows) != base.shape[0]:
        raise ValueError(
            f"base {tuple(base.shape)}, patches {tuple(patches.shape)} and {len(windows)} "
            "windows must agree in batch and channels"
        )
    out = base.clone()
    for b, (x0, y0, x1, y1) in enumerate(windows):
        size = (y1 - y0, x1 - x0)
        shrink = size[0] < patches.shape[-2] or size[1] < patches.shape[-1]
        resized = F.interpolate(patches[b:b + 1], size=size, mode="bilinear",
                                align_corners=False, antialias=shrink)
        if add:
            resized = resized + base[b:b + 1, :, y0:y1, x0:x1]
        out[b:b + 1, :, y0:y1, x0:x1] = resized
    return out


def error_area(error_logits: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """|σ(Ê) > 0.5| per sample inside the image: B×1×S×S logits → int64 B."""
    h, w = input_size
    return (error_logits[:, :, :h, :w] > 0).flatten(1).sum(dim=1)


def use_previous_base(
    area: torch.Tensor, previous_area: torch.Tensor | None, threshold: float = 1.1
) -> torch.Tensor:
    """The dynamic selector: True where R = area / previous_area > threshold.

    Where True, the patch is pasted on the previous final mask (the new global mask got
    worse), else on the new global mask. With no previous click the answer is False. A
    previous area of 0 gives R = inf when the new area is positive and R = 1 when both are 0.

    Args:
        area: int B, the error-map areas at this click.
        previous_area: int B at the previous click, or None.
    Returns:
        bool B.
    """
    if previous_area is None:
        return torch.zeros(area.shape, dtype=torch.bool, device=area.device)
    if previous_area.shape != area.shape:
        raise ValueError(f"area shapes differ: {tuple(area.shape)} vs {tuple(previous_area.shape)}")
    previous_area = previous_area.to(area.device)
    grown = area.double() > threshold * previous_area.double()
    from_zero = (area > 0) | (1.0 > threshold)  # R = inf, or R = 1 when both areas are 0
    return torch.where(previous_area > 0, grown, from_zero)
