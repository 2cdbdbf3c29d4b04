"""The exact Euclidean distance transform of the package (SPEC §7.1 and §7.3).

The distance of a True pixel of a mask is the Euclidean distance to the nearest False pixel, the
image border counting as False (the mask is padded by one pixel of zeros first, as RITM's clicker
does before ``cv2.distanceTransform``). Here it is always an exact integer, the *squared* distance
(int64), so equal distances are equal and every comparison (which error region is larger, which
pixel is the first maximum, ``distance > max / 1.7``) gives the same answer on every run.
OpenCV's float32 transform does not: its values differ by one ULP with the buffer's alignment,
which broke exact ties (two pixels at distance √125) at random.

- :func:`squared_distance_map`: the whole map, from SciPy's exact Euclidean *feature* transform
  (Maurer, Qi and Raghavan, PAMI 2003: for each pixel the coordinates of its nearest False pixel,
  found with integer-valued arithmetic); the squares are then computed in int64.
- :func:`farthest_pixels`: the maximum of that map and every pixel reaching it, which is all the
  click simulator needs (a click then costs about 1.2 times what it cost with OpenCV's transform
  alone, the whole map about 4.5 times: ``benchmarks/clicker_speed.py``). OpenCV's distances only
  *prune*: each of its values is the rounded root of the exact squared distance to some real
  False pixel (its row pass picks one column's parabola per pixel; which one may be inexact, the
  value is that column's true distance), so it never falls below the true distance by more than
  its rounding. Every pixel that could reach the maximum by that bound is then measured exactly
  on a window of the mask; a case too large for that falls back to :func:`squared_distance_map`.
  (``tests/test_distance.py`` checks the bound on large masks.)

The click simulator (``clicksam.eval.clicker``) and the training-time prompt simulation
(``clicksam.train.distance``) both use this module.
"""
from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np
from scipy import ndimage

__all__ = ["farthest_pixels", "squared_distance_map"]

# OpenCV's float32 distance d of a pixel with exact squared distance n satisfies
# d >= sqrt(n) * (1 - _SLACK) (its root is within a few ULP, 2^-23 each), for d < _OPENCV_EXACT_SUMS.
_SLACK = 2.0 ** -20
_OPENCV_EXACT_SUMS = 2048.0  # below this, OpenCV's float32 squared sums are exact integers
_OPENCV_MAX_SIDE = 1 << 16  # OpenCV's precise transform handles rows up to this length
_WINDOW_BUDGET = 1 << 21  # pixels of the exact windows of farthest_pixels before the fallback
_NOTHING_NEAR = np.iinfo(np.int64).max  # no outside pixel in a window (never, if the bound holds)


def _check_mask(mask: np.ndarray, name: str = "mask") -> None:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise ValueError(f"{name} must be an H×W numpy array, got {type(mask).__name__} "
                         f"with shape {getattr(mask, 'shape', None)}")


def squared_distance_map(mask: np.ndarray) -> np.ndarray:
    """Exact squared Euclidean distance of each True pixel to the nearest False pixel or border.

    Args:
        mask: H×W array, True (nonzero) inside the region; indexed ``[y, x]``.

    Returns:
        H×W int64: ``dy² + dx²`` to the nearest pixel outside the region, where the pixels just
        outside the image (row -1 and H, column -1 and W) count as outside; 0 outside the region.

    Raises:
        ValueError: ``mask`` is not a 2-D numpy array.

    Example:
        >>> squared_distance_map(np.ones((3, 5), dtype=bool))[1].tolist()
        [1, 4, 4, 4, 1]
    """
    _check_mask(mask)
    height, width = mask.shape
    padded = np.zeros((height + 2, width + 2), dtype=bool)
    padded[1:-1, 1:-1] = mask
    nearest = ndimage.distance_transform_edt(padded, return_distances=False, return_indices=True)
    dy = nearest[0, 1:-1, 1:-1].astype(np.int64)
    dy -= np.arange(1, height + 1)[:, None]
    dx = nearest[1, 1:-1, 1:-1].astype(np.int64)
    dx -= np.arange(1, width + 1)[None, :]
    return dy * dy + dx * dx


def _float32_below(value: float) -> np.float32:
    """The largest float32 that is <= ``value``."""
    out = np.float32(value)
    return np.nextafter(out, np.float32(-np.inf)) if float(out) > value else out


def _window_squares(radius: int) -> np.ndarray:
    """(2r+1)×(2r+1) int64: dy² + dx² of each cell of a window from its centre."""
    offsets = np.arange(-radius, radius + 1, dtype=np.int64) ** 2
    return offsets[:, None] + offsets[None, :]


def _outside(mask: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """height×width bool: True where the pixel (top + i, left + j) is outside the region, the
    pixels beyond the image included (the border ring, and farther ones that are never nearer
    than the ring, so they change no minimum)."""
    out = np.ones((height, width), dtype=bool)
    y0, y1 = max(top, 0), min(top + height, mask.shape[0])
    x0, x1 = max(left, 0), min(left + width, mask.shape[1])
    if y0 < y1 and x0 < x1:
        np.logical_not(mask[y0:y1, x0:x1], out=out[y0 - top:y1 - top, x0 - left:x1 - left])
    return out


def _exact_at(mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """Exact squared distances of the pixels (ys, xs) whose nearest outside pixel lies within the
    radius r of ``squares`` (``_window_squares``) in rows and columns: the minimum of ``squares``
    over the outside pixels of each one's window. ``_NOTHING_NEAR`` where a window has none."""
    side = squares.shape[0]
    radius = side // 2
    if ys.size == 1:  # one window: no stride tricks
        window = _outside(mask, int(ys[0]) - radius, int(xs[0]) - radius, side, side)
        return np.array([squares[window].min() if window.any() else _NOTHING_NEAR])
    top, left = int(ys.min()) - radius, int(xs.min()) - radius
    outside = _outside(mask, top, left, int(ys.max()) - top + radius + 1, int(xs.max()) - left + radius + 1)
    windows = np.lib.stride_tricks.sliding_window_view(outside, (side, side))[ys - ys.min(), xs - xs.min()]
    return np.where(windows, squares, _NOTHING_NEAR).min(axis=(1, 2))


def _farthest_within_bound(mask: np.ndarray, approx: np.ndarray, first: int,
                           top: float) -> Optional[tuple[int, np.ndarray, np.ndarray]]:
    """``farthest_pixels`` from OpenCV's distances ``approx`` (excluded pixels zeroed; ``first``
    is the flat index of its maximum ``top``), or None when the windows would be too large."""
    if top >= _OPENCV_EXACT_SUMS or max(mask.shape) >= _OPENCV_MAX_SIDE:
        return None
    radius = math.ceil(top * (1 + _SLACK)) + 1  # every pixel's nearest outside pixel is this near
    squares = _window_squares(radius)
    y0, x0 = divmod(first, mask.shape[1])
    lower = int(_exact_at(mask, np.array([y0]), np.array([x0]), squares)[0])  # at most the maximum
    if lower == _NOTHING_NEAR:
        return None
    # every pixel reaching `lower` or more has approx >= sqrt(lower) * (1 - slack)
    ys, xs = np.divmod(np.flatnonzero(approx >= _float32_below(math.sqrt(lower) * (1 - _SLACK))), mask.shape[1])
    if ys.size == 1 and ys[0] == y0 and xs[0] == x0:  # the usual case: one pixel can be the farthest
        return lower, ys, xs
    if not 0 < ys.size * squares.size <= _WINDOW_BUDGET:
        return None
    exact = _exact_at(mask, ys, xs, squares)
    maximum = int(exact.max())
    if maximum == _NOTHING_NEAR:
        return None
    keep = exact == maximum
    return maximum, ys[keep], xs[keep]


def farthest_pixels(mask: np.ndarray, excluded: Optional[np.ndarray] = None) -> tuple[int, np.ndarray, np.ndarray]:
    """The largest exact squared distance of :func:`squared_distance_map` over the pixels of
    ``mask`` not in ``excluded``, and every pixel that reaches it.

    ``excluded`` pixels (e.g. already clicked) keep counting as inside the region for the others'
    distances; they only cannot be chosen (RITM zeroes them after the transform).

    Args:
        mask: H×W bool, the region. excluded: H×W bool or None.

    Returns:
        ``(maximum, ys, xs)``: the maximum (0 when no pixel is left) and the rows and columns of
        the pixels reaching it, in row-major order (``ys[0], xs[0]`` is the first maximum).

    Raises:
        ValueError: ``mask`` or ``excluded`` is not a 2-D array, or their shapes differ.
    """
    _check_mask(mask)
    mask = np.ascontiguousarray(mask, dtype=bool)
    if excluded is not None:
        _check_mask(excluded, "excluded")
        if excluded.shape != mask.shape:
            raise ValueError(f"excluded has shape {excluded.shape}, mask {mask.shape}")
        excluded = excluded.astype(bool, copy=False)
    nothing = (0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    if mask.size == 0:
        return nothing
    padded = cv2.copyMakeBorder(mask.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    approx = cv2.distanceTransform(padded, cv2.DIST_L2, 0)[1:-1, 1:-1]
    if excluded is not None:
        approx[excluded] = 0.0
    first = int(np.argmax(approx))
    top = float(approx.flat[first])
    if top == 0.0:
        return nothing
    found = _farthest_within_bound(mask, approx, first, top)
    if found is not None:
        return found
    squared = squared_distance_map(mask)
    if excluded is not None:
        squared[excluded] = 0
    maximum = int(squared.max())
    ys, xs = np.nonzero(squared == maximum)
    return maximum, ys, xs
