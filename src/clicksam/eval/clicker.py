"""The standard click simulator of interactive segmentation (RITM's protocol, SPEC §7.1).

Given the ground truth and the current prediction, the next click goes to the interior point of
the largest error region: the pixel farthest from the region's boundary (image borders count as
boundary). It is positive when the largest false-negative distance is strictly larger than the
largest false-positive distance (a tie is negative). The pixel is the first maximum in row-major
order, or, with a random generator, one of the tied maxima drawn uniformly (FocSAM's variant).
Distances are exact integer squared distances (:mod:`clicksam.distance`), compared as integers,
so ties are exact and a rerun gives the same clicks (OpenCV's float32 transform, RITM's, broke
exact ties at random with the buffer's alignment).

Coordinates: every :class:`~clicksam.prompts.Click` (the package's one click type) is ``(x, y)`` in
original-image pixels, i.e. column then row; arrays are indexed ``[y, x]``. The simulator's clicks
lie on pixels: their coordinates are integral.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from clicksam.distance import farthest_pixels, squared_distance_map
from clicksam.prompts import Click

__all__ = ["Click", "NoErrorLeftError", "error_distance_maps", "find_next_click", "next_click", "validate_gt"]


class NoErrorLeftError(ValueError):
    """Raised by :func:`next_click` when every error pixel is already clicked (or there is none)."""


def validate_gt(gt: np.ndarray, name: str = "gt") -> np.ndarray:
    """Check that ``gt`` is an HxW integer array with values in {-1, 0, 1} and return it.

    Raises:
        ValueError: wrong type, dimensionality or values.
    """
    if not isinstance(gt, np.ndarray) or gt.ndim != 2:
        raise ValueError(f"{name} must be an HxW numpy array, got {type(gt).__name__} "
                         f"with shape {getattr(gt, 'shape', None)}")
    if not (np.issubdtype(gt.dtype, np.integer) or gt.dtype == bool):
        raise ValueError(f"{name} must hold integers (1 object, 0 background, -1 ignore), got dtype {gt.dtype}")
    if gt.size and (int(gt.min()) < -1 or int(gt.max()) > 1):
        raise ValueError(f"{name} values must be in {{-1, 0, 1}}, got range [{gt.min()}, {gt.max()}]")
    return gt


def _check_inputs(gt: np.ndarray, pred: np.ndarray) -> None:
    validate_gt(gt)
    if not isinstance(pred, np.ndarray) or pred.dtype != bool:
        raise ValueError("pred must be a bool numpy array: threshold the probabilities (> 0.49) or "
                         f"logits (> 0) first; got {type(pred).__name__} {getattr(pred, 'dtype', '')}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} differs from gt shape {gt.shape}")


class _RegionDistance:
    """Exact squared distances of one error region, computed on its bounding box only.

    The box gets a 1-px zero margin: every pixel outside the box is off, and for a pixel inside,
    clamping any outside off-pixel onto that margin ring gives an off-pixel at most as far, so the
    distances equal those of the whole (border-padded) image exactly. Row-major order inside the
    box is the image's row-major order, so the first maximum is the same pixel too.

    ``maximum`` is the largest squared distance (an exact int) of an unclicked pixel, 0 when none
    is left; ``rows`` and ``cols`` are the image rows and columns of the pixels reaching it, in
    row-major order.
    """

    __slots__ = ("crop", "clicked", "top", "left", "maximum", "rows", "cols")

    def __init__(self, mask: np.ndarray, clicks: Iterable[Click]) -> None:
        self.crop, self.clicked, self.top, self.left, self.maximum = None, None, 0, 0, 0
        self.rows = self.cols = np.zeros(0, dtype=np.int64)
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return
        cols = np.flatnonzero(mask.any(axis=0))
        self.top, self.left = int(rows[0]), int(cols[0])
        self.crop = mask[self.top:rows[-1] + 1, self.left:cols[-1] + 1]
        self.clicked = np.zeros(self.crop.shape, dtype=bool)
        height, width = self.crop.shape
        for click in clicks:
            y, x = click.y - self.top, click.x - self.left
            if 0 <= y < height and 0 <= x < width:
                self.clicked[y, x] = True
        self.maximum, ys, xs = farthest_pixels(self.crop, self.clicked)
        self.rows, self.cols = ys + self.top, xs + self.left

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        """The squared distances on the whole ``shape`` (H, W) image (clicked pixels 0), int64."""
        out = np.zeros(shape, dtype=np.int64)
        if self.crop is not None:
            squared = squared_distance_map(self.crop)
            squared[self.clicked] = 0
            height, width = self.crop.shape
            out[self.top:self.top + height, self.left:self.left + width] = squared
        return out

    def pick(self, rng: np.random.Generator | None) -> tuple[int, int]:
        """(x, y) of the first maximum in row-major order, or of a random one of the maxima."""
        if self.maximum == 0:
            raise RuntimeError("an error region without unclicked pixels has no pixel to pick")
        pick = 0 if rng is None else int(rng.integers(len(self.rows)))
        return int(self.cols[pick]), int(self.rows[pick])


def _error_regions(gt: np.ndarray, pred: np.ndarray,
                   clicks: Sequence[Click]) -> tuple[_RegionDistance, _RegionDistance]:
    _check_inputs(gt, pred)
    height, width = gt.shape
    for click in clicks:
        if not (0 <= click.x < width and 0 <= click.y < height):
            raise ValueError(f"click {click} lies outside the {width}x{height} (WxH) image")
    return _RegionDistance((gt == 1) & ~pred, clicks), _RegionDistance((gt == 0) & pred, clicks)


def error_distance_maps(gt: np.ndarray, pred: np.ndarray,
                        clicks: Sequence[Click] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Distance maps of the false-negative and false-positive regions (SPEC §7.1).

    Each error pixel gets its exact Euclidean distance to the nearest pixel outside its region,
    the image border counting as outside (the mask padded by 1 px of zeros): the square root, in
    float64, of the exact integer squared distance the simulator compares, so equal distances
    are equal values.

    Args:
        gt: HxW int array, 1 object, 0 background, -1 ignore.
        pred: HxW bool array, the current prediction.
        clicks: earlier clicks; their pixels get distance 0 so they are never chosen again.

    Returns:
        ``(dt_fn, dt_fp)``, two HxW float64 arrays (0 outside the error regions).
    """
    fn, fp = _error_regions(gt, pred, tuple(clicks))
    return np.sqrt(fn.full(gt.shape)), np.sqrt(fp.full(gt.shape))


def find_next_click(gt: np.ndarray, pred: np.ndarray, clicks: Sequence[Click] = (),
                    rng: np.random.Generator | None = None) -> Click | None:
    """The next simulated click, or None when no unclicked error pixel remains.

    Args:
        gt: HxW int array, 1 object, 0 background, -1 ignore (ignore pixels are never errors).
        pred: HxW bool array, the current prediction (all False before the first click).
        clicks: earlier clicks, never chosen again.
        rng: None for RITM's deterministic rule (first maximum in row-major order); a numpy
            Generator to draw uniformly among the tied maxima instead (FocSAM's evaluation).

    Returns:
        A :class:`Click` with ``(x, y)`` in pixels, or None.
    """
    fn, fp = _error_regions(gt, pred, tuple(clicks))
    if fn.maximum == 0 and fp.maximum == 0:
        return None
    positive = fn.maximum > fp.maximum  # exact integers; a tie is negative
    x, y = (fn if positive else fp).pick(rng)
    return Click(x, y, positive)


def next_click(gt: np.ndarray, pred: np.ndarray, clicks: Sequence[Click] = (),
               rng: np.random.Generator | None = None) -> Click:
    """The next click of the standard protocol (SPEC §6, §7.1); see :func:`find_next_click`.

    Raises:
        NoErrorLeftError: the prediction has no unclicked error pixel (it is perfect outside the
            ignore region and the clicked pixels).
        ValueError: malformed inputs or a click outside the image.

    Example:
        >>> gt = np.zeros((5, 5), dtype=np.int64); gt[1:4, 1:4] = 1
        >>> next_click(gt, np.zeros((5, 5), dtype=bool))
        Click(x=2, y=2, positive=True)
    """
    click = find_next_click(gt, pred, clicks, rng)
    if click is None:
        raise NoErrorLeftError("no error pixel left to click: the prediction matches the ground truth "
                               "outside the ignore region and the clicked pixels")
    return click
