from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from clicksam.io import Polygon, mask_to_polygons, polygons_to_mask


def test_ring_with_hole_and_island():
    mask = np.zeros((30, 30), bool)
    mask[2:28, 2:28] = True
    mask[8:22, 8:22] = False  # hole
    mask[12:18, 12:18] = True  # island inside the hole
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 2
    assert len(polygons[0].holes) == 1 and polygons[1].holes == []
    np.testing.assert_array_equal(polygons_to_mask(polygons, 30, 30), mask)


def test_exact_round_trip_on_random_shapes():
    rng = np.random.default_rng(0)
    for trial in range(60):
        mask = np.zeros((40, 50), np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            centre = (int(rng.integers(0, 50)), int(rng.integers(0, 40)))
            cv2.circle(mask, centre, int(rng.integers(1, 12)), int(rng.integers(0, 2)), -1)
        if trial % 3 == 0:
            mask = (rng.random((40, 50)) < 0.3).astype(np.uint8)
        polygons = mask_to_polygons(mask)
        as_json = json.loads(json.dumps([p.to_dict() for p in polygons]))
        np.testing.assert_array_equal(polygons_to_mask(as_json, 40, 50), mask.astype(bool))


def test_empty_mask_and_tolerance():
    assert mask_to_polygons(np.zeros((4, 4), bool)) == []
    mask = np.zeros((64, 64), np.uint8)
    cv2.circle(mask, (32, 32), 25, 1, -1)
    exact = mask_to_polygons(mask)[0]
    simple = mask_to_polygons(mask, tolerance=2.0)[0]
    assert len(simple.exterior) < len(exact.exterior)
    iou = (polygons_to_mask([simple], 64, 64) & mask.astype(bool)).sum() / mask.sum()
    assert iou > 0.95


def test_bad_polygons_rejected():
    with pytest.raises(ValueError, match="exterior"):
        polygons_to_mask([{"holes": []}], 4, 4)
    with pytest.raises(ValueError, match=r"\[x, y\]"):
        Polygon.from_dict({"exterior": [1, 2, 3]})
    with pytest.raises(ValueError, match="positive"):
        polygons_to_mask([], 0, 4)
    with pytest.raises(ValueError, match=">= 0"):
        mask_to_polygons(np.ones((3, 3), bool), tolerance=-1)
