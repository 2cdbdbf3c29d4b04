"""Prompts: the package's one :class:`Click` type, and validation of user prompts (points, labels,
boxes, mask inputs) with actionable errors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np


def _number(value: Any) -> int | float:
    """An integral value as int (pixels stay pixels in JSON), any other as float."""
    value = float(value)
    return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class Click:
    """A click at (x, y) in original-image pixels: x is the column, y the row (arrays are indexed
    ``[y, x]``); sub-pixel values are allowed. ``positive`` is False for a background click.

    The evaluation's click simulator places clicks on pixels, so its clicks hold integral values.
    """

    x: float
    y: float
    positive: bool = True

    def to_list(self) -> list[Any]:
        """``[x, y, positive]``, the JSON form used in result files (integral coordinates as ints)."""
        return [_number(self.x), _number(self.y), bool(self.positive)]

    @classmethod
    def from_list(cls, values: Sequence[Any]) -> "Click":
        """Inverse of :meth:`to_list`."""
        if len(values) != 3:
            raise ValueError(f"a click is [x, y, positive], got {values!r}")
        return cls(_number(values[0]), _number(values[1]), bool(values[2]))


def check_point(x: float, y: float, size: tuple[int, int]) -> None:
    """Raise ValueError unless (x, y) is a finite point inside an image of size (H, W)."""
    h, w = size
    if not (np.isfinite(x) and np.isfinite(y)):
        raise ValueError(f"click ({x}, {y}) has a NaN or infinite coordinate; give finite pixel coordinates (x, y)")
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"click (x={x}, y={y}) is outside the {w}x{h} (WxH) image; x must be in [0, {w}) and y in [0, {h})")


MIN_BOX_SIZE = 1.0  # pixels: a thinner box is a mis-click (a drag of zero length), not a prompt


def check_box(box, size: tuple[int, int]) -> np.ndarray:
    """Validate one XYXY box for an image of size (H, W); returns it as float32[4].

    The one rule for boxes (library, session, CLI and web API): finite values, x0 <= x1 and y0 <= y1,
    at least ``MIN_BOX_SIZE`` pixels wide and high, not entirely outside the image.
    """
    arr = np.asarray(box, dtype=np.float64).reshape(-1)
    if arr.shape != (4,):
        raise ValueError(f"box must have 4 values (x0, y0, x1, y1), got {np.asarray(box).shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"box {arr.tolist()} has a NaN or infinite value")
    x0, y0, x1, y1 = arr
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box (x0={x0}, y0={y0}, x1={x1}, y1={y1}) has x1 < x0 or y1 < y0; give (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1")
    if x1 - x0 < MIN_BOX_SIZE or y1 - y0 < MIN_BOX_SIZE:
        raise ValueError(f"box (x0={x0:g}, y0={y0:g}, x1={x1:g}, y1={y1:g}) is {x1 - x0:g}x{y1 - y0:g} pixels; "
                         f"the box must be at least {MIN_BOX_SIZE:g} pixel wide and high")
    h, w = size
    if x1 < 0 or y1 < 0 or x0 > w or y0 > h:
        raise ValueError(f"box {arr.tolist()} lies entirely outside the {w}x{h} (WxH) image")
    return arr.astype(np.float32)


def check_prompts(
    point_coords, point_labels, box, mask_input, size: tuple[int, int]
) -> tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Validate the prompts of ``SamPredictor.predict``; returns float32/int arrays or None."""
    coords = labels = box_arr = mask_arr = None
    if (point_coords is None) != (point_labels is None):
        raise ValueError("point_coords and point_labels must be given together (point_labels: 1 positive, 0 negative)")
    if point_coords is not None:
        coords = np.asarray(point_coords, dtype=np.float64)
        labels = np.asarray(point_labels)
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(f"point_coords must have shape Nx2 (x, y), got {coords.shape}")
        if labels.shape != (coords.shape[0],):
            raise ValueError(f"point_labels must have shape ({coords.shape[0]},) to match point_coords, got {labels.shape}")
        bad = set(np.unique(labels).tolist()) - {0, 1, -1}
        if bad:
            raise ValueError(f"unknown point label(s) {sorted(bad)}; use 1 (positive), 0 (negative) or -1 (padding)")
        for (x, y), label in zip(coords, labels):
            if label != -1:
                check_point(float(x), float(y), size)
        coords = coords.astype(np.float32)
        labels = labels.astype(np.int64)
    if box is not None:
        box_arr = check_box(box, size)
    if mask_input is not None:
        mask_arr = np.asarray(mask_input, dtype=np.float32)
        if mask_arr.shape != (1, 256, 256):
            raise ValueError(
                f"mask_input must have shape 1x256x256 (the low-res logits returned by a previous predict), got {mask_arr.shape}"
            )
    return coords, labels, box_arr, mask_arr
