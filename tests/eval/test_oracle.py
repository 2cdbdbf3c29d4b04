"""The loop and metrics against oracles whose NoC, NoF and mIoU are computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from clicksam.eval import Click
from clicksam.eval.datasets import FolderDataset
from clicksam.eval.loop import evaluate_clicks
from clicksam.eval.metrics import summarize_click_ious
from clicksam.eval.segmenter import ErodedGtOracle, FixedMaskOracle, Prompt, build_oracle

from .conftest import square_mask


def gt_of(top, left, side):
    return (square_mask(top, left, side) > 0).astype(np.int8)


def run_oracle(oracle, gt, max_clicks=20):
    oracle.set_image(np.zeros((*gt.shape, 3), np.uint8), "img")
    return evaluate_clicks(oracle, gt, "obj", max_clicks)


def test_shrinking_erosion_schedule_by_hand():
    gt = gt_of(10, 20, 20)  # a 20x20 square, rows 10..29, cols 20..39
    oracle = ErodedGtOracle(lambda _id: gt, schedule=(3, 2, 1, 0))
    result = run_oracle(oracle, gt)
    # erosion e leaves a (20-2e)^2 square: 14^2, 16^2, 18^2, 20^2 over 400
    assert result.ious[:4] == pytest.approx([0.49, 0.64, 0.81, 1.0])
    assert result.ious[4:] == [1.0] * 16  # perfect after click 4: nothing left to click
    # click 1: the centre (first of the four maxima, distance 10); click 2: the 3-px ring's middle
    # line has distance 2, first at (21, 11); click 3: in the 2-px ring only the inner corners reach
    # sqrt(2), (21, 11) is already clicked so the top-right one (38, 11); click 4: the 1-px ring
    # is all at distance 1, first pixel (20, 10)
    assert result.clicks == [Click(29, 19, True), Click(21, 11, True), Click(38, 11, True), Click(20, 10, True)]
    s = summarize_click_ious([result.ious])
    assert s["noc"] == {"85": 4.0, "90": 4.0, "95": 4.0}
    assert s["nof"] == {"85": 0, "90": 0, "95": 0}
    assert s["5-miou"] == 1.0


def test_fixed_erosion_never_reaches_and_wrong_masks():
    big, small = gt_of(10, 20, 20), gt_of(5, 5, 10)
    results = [run_oracle(ErodedGtOracle(lambda _id, g=g: g, (1,)), g) for g in (big, small)]
    assert results[0].ious == pytest.approx([0.81] * 20)  # 18^2 / 20^2
    assert results[1].ious == pytest.approx([0.64] * 20)  # 8^2 / 10^2
    assert all(len(r.clicks) == 20 and all(c.positive for c in r.clicks) for r in results)
    assert len({(c.x, c.y) for c in results[0].clicks}) == 20
    s = summarize_click_ious([r.ious for r in results])
    assert s["noc"]["85"] == 20.0 and s["nof"] == {"85": 2, "90": 2, "95": 2}
    assert s["miou"] == pytest.approx([0.725] * 20)

    empty = run_oracle(FixedMaskOracle("empty"), small)
    assert empty.ious == [0.0] * 20 and all(c.positive for c in empty.clicks)
    full = run_oracle(FixedMaskOracle("full"), small)
    assert full.ious == pytest.approx([100 / 4096] * 20)
    # the first click comes from the empty prediction; then the background error region is the largest
    assert full.clicks[0] == Click(9, 9, True) and not full.clicks[1].positive


def test_ignore_band_is_excluded_from_iou_and_clicks():
    gt = gt_of(5, 5, 10)
    gt[4, 4:16] = -1  # an ignore band above the object
    dilated = ErodedGtOracle(lambda _id: gt, (-1,))  # dilation spills only into ignore + background
    result = run_oracle(dilated, gt)
    expected = 100 / (12 * 12 - 12)  # dilated 12x12 minus the 12 ignore pixels of its top row
    assert result.ious[0] == pytest.approx(expected)
    assert all(gt[c.y, c.x] != -1 for c in result.clicks)
    exact = run_oracle(ErodedGtOracle(lambda _id: gt, (0,)), gt)
    assert exact.ious == [1.0] * 20 and len(exact.clicks) == 1


def test_box_prompt_counts_as_one_click_and_errors():
    gt = gt_of(10, 20, 20)
    oracle = ErodedGtOracle(lambda _id: gt, (3, 0))
    oracle.set_image(np.zeros((64, 64, 3), np.uint8), "img")
    oracle.reset("obj")
    out = oracle.step(Prompt(box=(20, 10, 39, 29)))
    assert out.scores.sum() == 14 * 14
    with pytest.raises(ValueError, match="object id"):
        oracle.reset(None)
    with pytest.raises(ValueError, match="unknown oracle"):
        build_oracle("perfect", lambda _id: gt)
    with pytest.raises(RuntimeError, match="scores of shape"):
        FixedMaskOracle("empty").to_mask(out, (3, 3))


def test_oracle_through_a_folder_dataset(square_dataset):
    images, masks = square_dataset
    ds = FolderDataset(images, masks)
    by_id = {o.object_id: o for o in ds.objects}
    oracle = build_oracle("erode:3,2,1,0", lambda oid: ds.decode_gt(by_id[oid]))
    ious = []
    for obj in ds.objects:
        image, gt = ds.load(obj)
        oracle.set_image(image, obj.image_id)
        ious.append(evaluate_clicks(oracle, gt, obj.object_id).ious)
    # big: 0.49, 0.64, 0.81, 1; small (10x10): 4^2, 6^2, 8^2, 10^2 over 100
    s = summarize_click_ious(ious)
    assert s["miou"][:4] == pytest.approx([(0.49 + 0.16) / 2, (0.64 + 0.36) / 2, (0.81 + 0.64) / 2, 1.0])
