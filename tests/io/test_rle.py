from __future__ import annotations

import json

import numpy as np
import pytest

from clicksam.io import check_mask, mask_to_rle, mask_to_runs, rle_area, rle_bbox, rle_to_mask, runs_to_mask


def _random_masks():
    rng = np.random.default_rng(3)
    yield np.zeros((5, 7), bool)
    yield np.ones((5, 7), bool)
    for _ in range(10):
        yield rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) < 0.4


def test_coco_rle_round_trip_and_json_ready():
    for mask in _random_masks():
        rle = mask_to_rle(mask)
        assert isinstance(rle["counts"], str)
        rle = json.loads(json.dumps(rle))
        assert rle["size"] == list(mask.shape)
        np.testing.assert_array_equal(rle_to_mask(rle), mask)
        assert rle_area(rle) == int(mask.sum())


def test_rle_bbox_and_uncompressed_counts():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    assert rle_bbox(mask_to_rle(mask)) == [3.0, 2.0, 6.0, 3.0]
    # column-major uncompressed COCO counts: 2x2 mask with only (row 1, col 0) set
    decoded = rle_to_mask({"size": [2, 2], "counts": [1, 1, 2]})
    np.testing.assert_array_equal(decoded, [[False, False], [True, False]])


def test_row_major_runs_round_trip():
    for mask in _random_masks():
        runs = mask_to_runs(mask)
        assert sum(runs["counts"]) == mask.size
        np.testing.assert_array_equal(runs_to_mask(runs), mask)
    assert mask_to_runs(np.array([[True, True, False]]))["counts"] == [0, 2, 1]


@pytest.mark.parametrize("bad, message", [
    ({"size": [2, 2]}, "'size' and 'counts'"),
    ({"size": [2, -1], "counts": "0"}, "positive ints"),
    ({"size": [2, 2], "counts": [1, 1]}, "sum to 2"),
    ({"size": [2, 2], "counts": 5}, "string or a list"),
])
def test_bad_rle_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        rle_to_mask(bad)


def test_bad_masks_rejected():
    with pytest.raises(ValueError, match="2-D"):
        mask_to_rle(np.zeros((2, 2, 1), bool))
    with pytest.raises(ValueError, match="only 0 and 1"):
        check_mask(np.array([[0, 2]]))
    with pytest.raises(ValueError, match="expected 6"):
        runs_to_mask({"size": [2, 3], "counts": [1, 2]})
