"""The standard click simulator of interactive segmentation (RITM's protocol, SPEC §7.1).

Given the ground truth and the current prediction, the next click goes to the interior point of
the largest error region: the pixel farthest from the region's boundary (image borders count as
boundary). It is positive when the largest false-negative distance is strictly larger than the
largest false-positive distance (a tie is negative). The pixel is the first maximum in row-major
order, or, with a random generator, one of the tied maxima drawn uniformly (FocSAM's variant).

Coordinates: every :class:`Click` is ``(x, y)`` in original-image pixels, i.e. column then row;
arrays are indexed ``[y, x]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

__all__ = ["Click", "NoErrorLeftError", "error_distance_maps", "find_next_click", "next_click", "validate_gt"]


@dataclass(frozen=True)
class Click:
    """One simulated or user click.

    Attributes:
        x: column in original-image pixels (0 <= x < W).
        y: row in original-image pixels (0 <= y < H).
        positive: True for a foreground click, False for a background click.
    """

    x: int
    y: int
    positive: bool

    def to_list(self) -> list[Any]:
        """``[x, y, positive]``, the JSON form used in result files."""
        return [int(self.x), int(self.y), bool(self.positive)]

    @classmethod
    def from_list(cls, values: Sequence[Any]) -> "Click":
        """Inverse of :meth:`to_list`."""
        if len(values) != 3:
            raise ValueError(f"a click is [x, y, positive], got {values!r}")
        return cls(int(values[0]), int(values[1]), bool(values[2]))


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


def _padded_distance(mask: np.ndarray) -> np.ndarray:
    """Exact L2 distance of each on-pixel to the nearest off-pixel, the image border counting as off."""
    padded = cv2.copyMakeBorder(mask.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 0)
    return dist[1:-1, 1:-1]


def error_distance_maps(gt: np.ndarray, pred: np.ndarray,
                        clicks: Iterable[Click] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Distance maps of the false-negative and false-positive regions (SPEC §7.1).

    Args:
        gt: HxW int array, 1 object, 0 background, -1 ignore.
        pred: HxW bool array, the current prediction.
        clicks: earlier clicks; their pixels get distance 0 so they are never chosen again.

    Returns:
        ``(dt_fn, dt_fp)``, two HxW float32 arrays (0 outside the error regions).
    """
    _check_inputs(gt, pred)
    fn = (gt == 1) & ~pred
    fp = (gt == 0) & pred
    dt_fn = _padded_distance(fn)
    dt_fp = _padded_distance(fp)
    height, width = gt.shape
    for click in clicks:
        if not (0 <= click.x < width and 0 <= click.y < height):
            raise ValueError(f"click {click} lies outside the {width}x{height} (WxH) image")
        dt_fn[click.y, click.x] = 0.0
        dt_fp[click.y, click.x] = 0.0
    return dt_fn, dt_fp


def _pick_maximum(dist: np.ndarray, max_value: float, rng: np.random.Generator | None) -> tuple[int, int]:
    if rng is None:
        flat_index = int(np.argmax(dist))  # first maximum in row-major order
        row, col = divmod(flat_index, dist.shape[1])
        return col, row
    rows, cols = np.nonzero(dist == max_value)
    pick = int(rng.integers(len(rows)))
    return int(cols[pick]), int(rows[pick])


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
    dt_fn, dt_fp = error_distance_maps(gt, pred, clicks)
    fn_max = float(dt_fn.max()) if dt_fn.size else 0.0
    fp_max = float(dt_fp.max()) if dt_fp.size else 0.0
    if fn_max == 0.0 and fp_max == 0.0:
        return None
    positive = fn_max > fp_max
    if positive:
        x, y = _pick_maximum(dt_fn, fn_max, rng)
    else:
        x, y = _pick_maximum(dt_fp, fp_max, rng)
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
