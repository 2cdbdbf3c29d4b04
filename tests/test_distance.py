"""The package's exact distance (``clicksam.distance``): the whole map and the farthest pixels
against a brute-force O(N·M) computation, the fallback path, and the OpenCV bound the fast path
relies on."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from clicksam import distance
from clicksam.distance import farthest_pixels, squared_distance_map


def brute_force_squared(mask: np.ndarray) -> np.ndarray:
    """min over the off-pixels of the 1-px zero-padded mask of dy² + dx², for every on-pixel."""
    ys, xs = np.nonzero(mask)
    out = np.zeros(mask.shape, dtype=np.int64)
    off_y, off_x = np.nonzero(~np.pad(mask.astype(bool), 1))
    if ys.size:
        out[ys, xs] = ((ys[:, None] + 1 - off_y) ** 2 + (xs[:, None] + 1 - off_x) ** 2).min(axis=1)
    return out


def random_masks(count: int, seed: int, max_side: int = 24):
    """Masks of varied shapes: iid pixels of varied density, unions of rectangles and disks,
    all-on and all-off, single rows and columns."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(1, max_side + 1, size=2))
        if i % 7 == 0:
            h = 1 if i % 14 == 0 else h
            w = 1 if i % 14 == 7 else w
        kind = i % 4
        if kind == 0:
            mask = rng.random((h, w)) < rng.uniform(0.3, 1.0)
        elif kind == 1:
            mask = np.zeros((h, w), dtype=bool)
            for _ in range(int(rng.integers(1, 4))):
                y0, x0 = int(rng.integers(h)), int(rng.integers(w))
                mask[y0:y0 + int(rng.integers(1, h + 1)), x0:x0 + int(rng.integers(1, w + 1))] = True
        elif kind == 2:
            yy, xx = np.mgrid[:h, :w]
            cy, cx, r2 = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, 150)
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r2
        else:
            mask = np.full((h, w), bool(i % 8 == 3))
        yield mask


def test_squared_distance_map_equals_brute_force():
    for mask in random_masks(300, seed=0):
        got = squared_distance_map(mask)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, brute_force_squared(mask))


def test_squared_distance_map_border_counts_as_boundary_and_refuses_bad_input():
    assert squared_distance_map(np.ones((3, 5), dtype=bool)).tolist() == [[1, 1, 1, 1, 1], [1, 4, 4, 4, 1],
                                                                           [1, 1, 1, 1, 1]]
    assert squared_distance_map(np.zeros((0, 4), dtype=bool)).shape == (0, 4)
    with pytest.raises(ValueError, match="H×W"):
        squared_distance_map(np.ones((2, 2, 2), dtype=bool))
    with pytest.raises(ValueError, match="H×W"):
        squared_distance_map([[1, 0]])


def _reference_farthest(mask: np.ndarray, excluded: np.ndarray):
    squared = brute_force_squared(mask)
    squared[excluded] = 0
    maximum = int(squared.max()) if squared.size else 0
    ys, xs = np.nonzero(squared == maximum) if maximum else (np.zeros(0, int), np.zeros(0, int))
    return maximum, ys.tolist(), xs.tolist()


@pytest.mark.parametrize("path", ["fast", "fallback"])
def test_farthest_pixels_equals_brute_force(path, monkeypatch):
    if path == "fallback":  # every call takes the whole exact map instead of OpenCV's bound
        monkeypatch.setattr(distance, "_WINDOW_BUDGET", 0)
    rng = np.random.default_rng(1)
    for mask in random_masks(300, seed=2):
        excluded = mask & (rng.random(mask.shape) < 0.1)
        maximum, ys, xs = farthest_pixels(mask, excluded)
        assert (maximum, ys.tolist(), xs.tolist()) == _reference_farthest(mask, excluded)


def test_farthest_pixels_large_distances_fall_back_exactly(monkeypatch):
    # distances beyond the range where OpenCV's float32 sums are exact take the exact map
    monkeypatch.setattr(distance, "_OPENCV_EXACT_SUMS", 2.0)
    mask = np.ones((9, 12), dtype=bool)
    assert farthest_pixels(mask)[0] == 25
    assert farthest_pixels(mask)[1].tolist() == [4, 4, 4, 4]


def test_farthest_pixels_refuses_bad_input():
    with pytest.raises(ValueError, match="excluded"):
        farthest_pixels(np.ones((3, 3), dtype=bool), np.zeros((2, 3), dtype=bool))
    assert farthest_pixels(np.zeros((4, 4), dtype=bool))[0] == 0
    assert farthest_pixels(np.zeros((0, 4), dtype=bool))[0] == 0


def test_opencv_never_underestimates_beyond_the_slack():
    """The premise of ``farthest_pixels``' pruning, on masks far larger than the brute-force ones:
    OpenCV's float32 distance is never below the exact one by more than the allowed slack."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:600, :800]
    for _ in range(6):
        mask = rng.random((600, 800)) < 0.9995  # sparse off-pixels: long rows with many parabolas
        for _ in range(4):
            cy, cx, r = rng.uniform(0, 600), rng.uniform(0, 800), rng.uniform(20, 300)
            mask &= (yy - cy) ** 2 + (xx - cx) ** 2 > r * r * rng.uniform(0, 0.3)
        padded = np.pad(mask, 1).astype(np.uint8)
        approx = cv2.distanceTransform(padded, cv2.DIST_L2, 0)[1:-1, 1:-1].astype(np.float64)
        exact = np.sqrt(squared_distance_map(mask))
        assert np.all(approx >= exact * (1 - distance._SLACK))
