"""FocSAM's focus window: which embedding cells the FocusRefiner processes (SPEC §4).

The coarse logits (256×256, padded 1024 frame) are upsampled to the 1024 frame, the box of the
positive pixels is expanded about its centre and clipped, and the 64×64 embedding cells that the
box touches are switched on (a max-pool of the 1024×1024 box mask to 64×64).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def focus_box(coarse_logits: Tensor, expand_ratio: tuple[float, float], frame_size: int = 1024) -> Tensor:
    """Expanded bounding box of the positive coarse logits.

    Args:
        coarse_logits: B×1×h×w logits (any resolution; upsampled bilinearly to the frame).
        expand_ratio: (height ratio, width ratio) applied about the box centre.
        frame_size: side of the square input frame (1024 for SAM).

    Returns:
        B×4 int64 boxes (left, top, right, bottom) in frame pixels, right/bottom exclusive. An
        empty mask gives the whole frame. Expanded edges are rounded half-to-even and clipped.
    """
    if coarse_logits.ndim != 4 or coarse_logits.shape[1] != 1:
        raise ValueError(f"coarse_logits must be B×1×h×w, got {tuple(coarse_logits.shape)}")
    h_ratio, w_ratio = (float(r) for r in expand_ratio)
    if not (h_ratio > 0 and w_ratio > 0):
        raise ValueError(f"expand_ratio must be positive, got {expand_ratio}")
    logits = coarse_logits.detach().float()
    if logits.shape[-2:] != (frame_size, frame_size):
        logits = F.interpolate(logits, (frame_size, frame_size), mode="bilinear", align_corners=False)
    positive = logits[:, 0] > 0
    rows, cols = positive.any(dim=2), positive.any(dim=1)  # B×frame each
    index = torch.arange(frame_size, device=logits.device)
    big = frame_size + 1
    top = torch.where(rows, index, big).amin(dim=1)
    bottom = torch.where(rows, index, -1).amax(dim=1) + 1
    left = torch.where(cols, index, big).amin(dim=1)
    right = torch.where(cols, index, -1).amax(dim=1) + 1
    empty = ~rows.any(dim=1)
    top, left = torch.where(empty, 0, top), torch.where(empty, 0, left)
    bottom, right = torch.where(empty, frame_size, bottom), torch.where(empty, frame_size, right)

    # float32 arithmetic, in the reference's order, so that .5 ties round the same way
    box = torch.stack((left, top, right, bottom), dim=1).to(torch.float32)
    xc, yc = (box[:, 0] + box[:, 2]) / 2.0, (box[:, 1] + box[:, 3]) / 2.0
    left = torch.round(xc - w_ratio * (xc - box[:, 0])).clamp(min=0)
    right = torch.round(xc - w_ratio * (xc - box[:, 2])).clamp(max=frame_size)
    top = torch.round(yc - h_ratio * (yc - box[:, 1])).clamp(min=0)
    bottom = torch.round(yc - h_ratio * (yc - box[:, 3])).clamp(max=frame_size)
    return torch.stack((left, top, right, bottom), dim=1).to(torch.int64)


def box_to_cells(boxes: Tensor, grid_size: int = 64, frame_size: int = 1024) -> Tensor:
    """Embedding cells touched by each box: the adaptive max-pool of the box mask to the grid.

    Args:
        boxes: B×4 int64 (left, top, right, bottom), right/bottom exclusive, frame pixels.
        grid_size: side of the embedding grid (64).
        frame_size: side of the frame the boxes live in (1024).

    Returns:
        B×grid×grid bool.
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be B×4, got {tuple(boxes.shape)}")
    cell = torch.arange(grid_size, device=boxes.device)
    # adaptive pooling bin i covers [floor(i·F/g), ceil((i+1)·F/g))
    start = torch.div(cell * frame_size, grid_size, rounding_mode="floor")
    end = -torch.div(-(cell + 1) * frame_size, grid_size, rounding_mode="floor")
    left, top, right, bottom = (boxes[:, i : i + 1] for i in range(4))
    on_rows = (start < bottom) & (end > top) & (bottom > top)  # B×g
    on_cols = (start < right) & (end > left) & (right > left)
    return on_rows[:, :, None] & on_cols[:, None, :]


def focus_cells(
    coarse_logits: Tensor,
    expand_ratio: tuple[float, float],
    grid_size: int = 64,
    frame_size: int = 1024,
) -> Tensor:
    """B×1×h×w coarse logits -> B×grid×grid bool cells of the expanded focus box."""
    return box_to_cells(focus_box(coarse_logits, expand_ratio, frame_size), grid_size, frame_size)


def draw_expand_ratio(max_ratio: float = 1.4, generator: torch.Generator | None = None) -> tuple[float, float]:
    """Training-time expansion: (height, width) ratios drawn independently from U(1.0, max_ratio)."""
    if max_ratio < 1.0:
        raise ValueError(f"max_ratio must be at least 1.0, got {max_ratio}")
    draws = torch.rand(2, generator=generator, dtype=torch.float64)
    h_ratio, w_ratio = (1.0 + (max_ratio - 1.0) * draws).tolist()
    return h_ratio, w_ratio
