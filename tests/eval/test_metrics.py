"""Metrics on hand-made IoU sequences and masks (SPEC §7.2)."""
from __future__ import annotations

import numpy as np
import pytest

from clicksam.eval.metrics import (
    boundary_iou, iou, mask_boundary, mean_pairwise_iou, miou_curve, noc, nof, summarize_click_ious,
)

NEVER = [0.5] * 19 + [0.84]
AT_20 = [0.5] * 19 + [0.91]
AT_1 = [0.96] + [0.97] * 19
AT_3 = [0.2, 0.86, 0.9] + [0.95] * 17


def test_noc_cases():
    assert noc(NEVER, 0.85) == 20
    assert noc(AT_20, 0.90) == 20
    assert noc(AT_1, 0.95) == 1
    assert [noc(AT_3, t) for t in (0.85, 0.90, 0.95)] == [2, 3, 4]
    assert noc([0.1, 0.95], 0.9, max_clicks=1) == 1  # only the first max_clicks values count


def test_nof_spec_and_ritm_counting_differ_only_at_the_last_click():
    seqs = [NEVER, AT_20, AT_1, AT_3]
    assert nof(seqs, 0.90) == 1  # only NEVER fails (SPEC: never reached)
    assert nof(seqs, 0.90, ritm_compat=True) == 2  # RITM also counts NoC == 20
    assert nof(seqs, 0.85) == 1


def test_summary_of_hand_made_sequences():
    seqs = [NEVER, AT_20, AT_1, AT_3]
    s = summarize_click_ious(seqs)
    assert s["num_objects"] == 4
    assert s["noc"] == {"85": pytest.approx((20 + 20 + 1 + 2) / 4), "90": pytest.approx((20 + 20 + 1 + 3) / 4),
                        "95": pytest.approx((20 + 20 + 1 + 4) / 4)}
    assert s["nof"] == {"85": 1, "90": 1, "95": 2}
    assert s["miou"][0] == pytest.approx((0.5 + 0.5 + 0.96 + 0.2) / 4)
    assert s["5-miou"] == pytest.approx((0.5 + 0.5 + 0.97 + 0.95) / 4)
    assert s["miou"][19] == pytest.approx((0.84 + 0.91 + 0.97 + 0.95) / 4)


def test_miou_curve_needs_full_sequences():
    with pytest.raises(ValueError, match="shorter"):
        miou_curve([[0.5] * 19], 20)
    with pytest.raises(ValueError):
        miou_curve([], 20)


def test_iou_ignores_ignore_pixels():
    gt = np.array([[1, 1, 0, -1], [1, 0, 0, -1]])
    pred = np.array([[1, 0, 1, 1], [1, 0, 0, 1]], dtype=bool)
    # object {(0,0),(0,1),(1,0)}; pred on non-ignore {(0,0),(0,2),(1,0)}: inter 2, union 4
    assert iou(gt, pred) == pytest.approx(0.5)
    assert iou(np.zeros((2, 2), int), np.zeros((2, 2), bool)) == 1.0


def test_boundary_band_and_boundary_iou():
    mask = np.zeros((50, 50), dtype=bool)
    mask[10:40, 10:40] = True
    band = mask_boundary(mask, dilation_ratio=0.02)  # d = round(0.02 * 70.7) = 1: the outer ring
    assert band.sum() == 30 * 4 - 4
    assert not band[11:39, 11:39].any()
    gt = mask.astype(np.int64)
    assert boundary_iou(gt, mask) == 1.0
    shifted = np.roll(mask, 5, axis=1)
    assert 0.0 < boundary_iou(gt, shifted) < iou(gt, shifted)
    assert boundary_iou(gt, np.zeros_like(mask)) == 0.0


def test_mean_pairwise_iou():
    a = np.zeros((4, 4), bool); a[:2] = True
    b = np.zeros((4, 4), bool); b[:1] = True
    c = a.copy()
    # pairs: (a,b)=0.5, (a,c)=1, (b,c)=0.5
    assert mean_pairwise_iou([a, b, c]) == pytest.approx(2 / 3)
    assert mean_pairwise_iou([a]) == 1.0
    empty = np.zeros((4, 4), bool)
    assert mean_pairwise_iou([empty, empty]) == 1.0


def test_cropped_boundary_equals_whole_image_erosion():
    import cv2

    rng = np.random.default_rng(0)
    for _ in range(30):
        h, w = rng.integers(20, 90, size=2)
        mask = np.zeros((h, w), dtype=bool)
        for _ in range(3):
            y, x = rng.integers(0, h), rng.integers(0, w)
            mask[max(0, y - rng.integers(1, 15)):y + rng.integers(1, 15), max(0, x - rng.integers(1, 15)):x + rng.integers(1, 15)] = True
        ratio = float(rng.choice([0.02, 0.05, 0.1]))
        d = max(1, int(round(ratio * np.hypot(h, w))))
        padded = np.pad(mask, 1).astype(np.uint8)
        whole = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1:-1, 1:-1]
        np.testing.assert_array_equal(mask_boundary(mask, ratio), mask & (whole == 0))


def test_boundary_iou_equals_the_whole_image_formula():
    rng = np.random.default_rng(1)
    for _ in range(30):
        gt = np.zeros((60, 80), dtype=np.int64)
        pred = np.zeros((60, 80), dtype=bool)
        for target, value in ((gt, 1), (pred, True)):
            y, x = rng.integers(0, 60), rng.integers(0, 80)
            target[max(0, y - 12):y + 12, max(0, x - 15):x + 15] = value
        gt[rng.integers(0, 60), :] = -1
        valid = gt != -1
        a = mask_boundary(gt == 1) & valid
        b = mask_boundary(pred) & valid
        union = np.count_nonzero(a | b)
        expected = 1.0 if union == 0 else np.count_nonzero(a & b) / union
        assert boundary_iou(gt, pred) == pytest.approx(expected)
