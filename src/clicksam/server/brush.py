"""Brush and eraser: rasterising strokes, and how strokes and clicks combine into one mask.

The mask shown and exported is the model's mask with the *overrides* of the strokes on top:
pixels painted by a stroke are in the object, pixels erased by one are out, whatever the model
says, and later clicks keep them. A click placed on an overridden pixel hands that region back
to the model: the connected region (4-neighbours) of pixels with the same override around the
click is released. Boxes release nothing. A later stroke wins over an earlier one.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import numpy as np

from clicksam.server.steps import Action, Step, Stroke

__all__ = ["stroke_pixels", "override_layer", "apply_overrides", "paint"]

PAINT, ERASE = 1, -1


def stroke_pixels(points: Sequence[tuple[float, float]], radius: float, shape: tuple[int, int]) -> np.ndarray:
    """The pixels a stroke covers: those whose centre ``(i + 0.5, j + 0.5)`` lies within ``radius``
    of the polyline through ``points``.

    Args:
        points: XY image coordinates (one point makes a disk).
        radius: brush radius in image pixels.
        shape: (H, W) of the image.

    Returns:
        H×W bool mask.
    """
    height, width = shape
    covered = np.zeros(shape, dtype=bool)
    path = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    segments = zip(path, path[1:]) if len(path) > 1 else [(path[0], path[0])]
    for start, end in segments:
        x0 = max(int(math.floor(min(start[0], end[0]) - radius - 0.5)), 0)
        x1 = min(int(math.ceil(max(start[0], end[0]) + radius)), width)
        y0 = max(int(math.floor(min(start[1], end[1]) - radius - 0.5)), 0)
        y1 = min(int(math.ceil(max(start[1], end[1]) + radius)), height)
        if x0 >= x1 or y0 >= y1:
            continue
        px = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5 - start[0]
        py = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5 - start[1]
        dx, dy = end[0] - start[0], end[1] - start[1]
        length2 = dx * dx + dy * dy
        t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0) if length2 > 0 else 0.0
        covered[y0:y1, x0:x1] |= (px - t * dx) ** 2 + (py - t * dy) ** 2 <= radius * radius
    return covered


@functools.lru_cache(maxsize=1024)
def _covered(points: tuple[tuple[float, float], ...], radius: float,
             shape: tuple[int, int]) -> tuple[int, int, int, int, np.ndarray]:
    """A stroke's pixels as (top, left, height, width, bits of that box), kept so that a click does
    not rasterise every stroke again; a few kilobytes per stroke."""
    covered = stroke_pixels(points, radius, shape)
    rows, cols = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
    if not rows.size:
        return 0, 0, 0, 0, np.zeros(0, np.uint8)
    box = covered[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return int(rows[0]), int(cols[0]), box.shape[0], box.shape[1], np.packbits(box)


def _stroke_mask(stroke: Stroke, shape: tuple[int, int]) -> np.ndarray:
    """H×W bool pixels of a stroke, from the cache."""
    top, left, height, width, bits = _covered(stroke.points, stroke.radius, shape)
    covered = np.zeros(shape, dtype=bool)
    covered[top:top + height, left:left + width] = np.unpackbits(bits, count=height * width).reshape(height, width)
    return covered


def paint(mask: np.ndarray, stroke: Stroke) -> np.ndarray:
    """``mask`` (H×W bool) with ``stroke`` painted in or erased (a new array)."""
    covered = _stroke_mask(stroke, mask.shape)
    return mask | covered if stroke.mode == "paint" else mask & ~covered


def _release(layer: np.ndarray, x: float, y: float) -> None:
    """Hand the overridden region under the click at (x, y) back to the model."""
    from scipy import ndimage

    column = min(max(int(math.floor(x)), 0), layer.shape[1] - 1)
    row = min(max(int(math.floor(y)), 0), layer.shape[0] - 1)
    value = layer[row, column]
    if value == 0:
        return
    regions, _ = ndimage.label(layer == value)  # 4-connectivity
    layer[regions == regions[row, column]] = 0


def override_layer(steps: Sequence[Step], shape: tuple[int, int]) -> Optional[np.ndarray]:
    """The strokes' overrides after ``steps`` (the object's current steps, oldest first).

    Returns:
        H×W int8 (1 painted, -1 erased, 0 the model decides), or ``None`` when no stroke counts.
    """
    layer: Optional[np.ndarray] = None
    for step in steps:
        if isinstance(step, Stroke):
            if layer is None:
                layer = np.zeros(shape, dtype=np.int8)
            layer[_stroke_mask(step, shape)] = PAINT if step.mode == "paint" else ERASE
        elif isinstance(step, Action) and step.kind == "click" and layer is not None:
            _release(layer, step.x, step.y)
    if layer is not None and not layer.any():
        return None
    return layer


def apply_overrides(model_mask: np.ndarray, layer: Optional[np.ndarray]) -> np.ndarray:
    """The mask shown: ``model_mask`` (H×W bool) with the painted pixels in and the erased ones out."""
    if layer is None:
        return model_mask
    return (model_mask | (layer == PAINT)) & (layer != ERASE)
