"""Batched exact squared distance maps in torch (CPU or GPU), for click simulation.

``squared_distance_maps(masks)`` gives, for every True pixel, the squared Euclidean distance to the
nearest False pixel as an exact integer, the image border counting as False: the package's one
distance, :func:`clicksam.distance.squared_distance_map`, which the evaluation clicker uses too.
CPU tensors go through that function map by map. On other devices the same integers come from a
batched two-pass transform on integers: a row pass finds, for each pixel, the nearest
False pixel in its row; a column pass takes ``min_k (i-k)² + row[k]²`` over the column, in chunks
so memory stays bounded (the tests check that it equals the CPU function).

``beyond_fraction(squared, squared_max, ratio)`` decides ``distance > max / ratio`` exactly on
those integers (SPEC §7.3's "distance > max/1.7").
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from clicksam.distance import squared_distance_map

_FLOAT32_EXACT = 1 << 24  # every integer below this is a float32


def _left_distance(mask: torch.Tensor) -> torch.Tensor:
    """B×H×W bool -> B×H×W long: distance to the nearest False pixel at or left of each pixel
    (the border sits at index -1)."""
    idx = torch.arange(mask.shape[2], device=mask.device).expand(mask.shape)
    last_false = torch.where(mask, torch.full_like(idx, -1), idx).cummax(dim=2).values
    return idx - last_false


def _torch_squared(mask: torch.Tensor, chunk_elements: int) -> torch.Tensor:
    """The batched two-pass transform (see the module docstring); B×H×W bool -> int64. Every value
    is an integer below (H+1)² + (W+1)², so float32 holds them exactly when that is below 2^24
    (square maps up to 2894 pixels a side, float32 being the faster kind on accelerators); int64 otherwise."""
    b, h, w = mask.shape
    dtype = torch.float32 if (h + 1) ** 2 + (w + 1) ** 2 < _FLOAT32_EXACT else torch.int64
    row = torch.minimum(_left_distance(mask), _left_distance(mask.flip(2)).flip(2)).to(dtype)
    row_sq = row * row  # B×H×W
    rows = torch.arange(h, device=mask.device, dtype=dtype)
    offsets_sq = (rows[:, None] - rows[None, :]) ** 2  # i×k
    # squared distance to the top/bottom border rows (k = -1 and k = h)
    border_sq = torch.minimum((rows + 1) ** 2, (h - rows) ** 2)[None, :, None]
    cols = max(1, chunk_elements // max(1, b * h * h))
    out = torch.empty_like(row_sq)
    for start in range(0, w, cols):
        part = row_sq[:, :, start:start + cols]  # B×K×w'
        cand = offsets_sq[None, :, :, None] + part[:, None, :, :]  # B×I×K×w'
        out[:, :, start:start + cols] = cand.min(dim=2).values
    out = torch.minimum(out, border_sq.expand_as(out))
    return torch.where(mask, out, torch.zeros_like(out)).to(torch.int64)


def squared_distance_maps(mask: torch.Tensor, backend: str = "auto", chunk_elements: int = 1 << 24) -> torch.Tensor:
    """Exact squared Euclidean distance of each True pixel to the nearest False pixel or the border.

    Args:
        mask: B×H×W bool (or anything castable), any device; indexed ``[b, y, x]``.
        backend: "numpy" (CPU tensors: :func:`clicksam.distance.squared_distance_map` map by map),
            "torch" (batched integer two-pass, any device) or "auto" (numpy for CPU tensors, torch
            otherwise). Both give the same integers.
        chunk_elements: bound on the temporary B·H·H·w' tensor of the torch column pass.
    Returns:
        B×H×W int64 squared distances (0 on False pixels), on the device of ``mask``.
    """
    if mask.dim() != 3:
        raise ValueError(f"mask must be B×H×W, got {tuple(mask.shape)}")
    if backend not in ("auto", "torch", "numpy"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'numpy', got {backend!r}")
    mask = mask.bool()
    if backend == "numpy" or (backend == "auto" and mask.device.type == "cpu"):
        if mask.device.type != "cpu":
            raise ValueError("the numpy backend needs a CPU tensor; use backend='torch' on other devices")
        maps = mask.numpy()
        out = np.empty(maps.shape, dtype=np.int64)
        for i, m in enumerate(maps):
            out[i] = squared_distance_map(m)
        return torch.from_numpy(out)
    if mask.numel() == 0:
        return torch.zeros(mask.shape, dtype=torch.int64, device=mask.device)
    return _torch_squared(mask, chunk_elements)


def beyond_fraction(squared: torch.Tensor, squared_max: torch.Tensor, ratio: float) -> torch.Tensor:
    """``distance > max / ratio``, decided exactly on squared integer distances.

    ``ratio`` is read as the fraction p/q nearest to it with q ≤ 100 (1.7 = 17/10, 2 = 2/1), so
    ``d > m / (p/q)`` becomes ``p²·d² > q²·m²`` in int64 (exact for maps under 100,000 pixels a side).

    Args:
        squared: B×H×W int64 squared distances. squared_max: B int64, the squared maxima.
        ratio: in [1, 100] (FocSAM's 1.7, RITM's 2).
    Returns:
        B×H×W bool.
    """
    if not 1 <= ratio <= 100:
        raise ValueError(f"ratio must be in [1, 100], got {ratio}")
    frac = Fraction(str(ratio)).limit_denominator(100)
    return frac.numerator ** 2 * squared > frac.denominator ** 2 * squared_max[:, None, None]
