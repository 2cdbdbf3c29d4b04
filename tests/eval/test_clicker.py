"""The click simulator (SPEC §7.1): hand-made cases and property tests on random masks.

The exact-rule tests on 1000+ random cases run twice live in ``test_clicker_exact.py``."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clicksam.distance import squared_distance_map
from clicksam.eval import Click, NoErrorLeftError, find_next_click, next_click
from clicksam.eval.clicker import error_distance_maps


def brute_force_distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (float64, the root of the exact integer square) of each on-pixel to the
    nearest off-pixel of the 1-px zero-padded mask."""
    padded = np.pad(mask, 1)
    off_y, off_x = np.nonzero(~padded)
    out = np.zeros(mask.shape, dtype=np.int64)
    for y, x in zip(*np.nonzero(mask)):
        out[y, x] = ((off_y - (y + 1)) ** 2 + (off_x - (x + 1)) ** 2).min()
    return np.sqrt(out)


def square_gt(size=12, top=2, left=3, side=6) -> np.ndarray:
    gt = np.zeros((size, size), dtype=np.int64)
    gt[top:top + side, left:left + side] = 1
    return gt


def test_first_click_is_centre_of_object():
    gt = square_gt()  # rows 2..7, cols 3..8: centre pixels rows 4,5 / cols 5,6 at distance 3
    click = next_click(gt, np.zeros_like(gt, dtype=bool))
    assert click == Click(x=5, y=4, positive=True)  # first maximum in row-major order


def test_negative_click_on_false_positive_and_tie_is_negative():
    gt = np.zeros((9, 20), dtype=np.int64)
    gt[2:7, 2:7] = 1  # a 5x5 object
    pred = np.zeros(gt.shape, dtype=bool)
    pred[2:7, 12:17] = True  # a 5x5 false positive of the same size: tie -> negative
    click = next_click(gt, pred)
    assert click == Click(x=14, y=4, positive=False)
    pred[2:7, 12:17] = False
    pred[3:6, 12:15] = True  # smaller false positive: the object wins
    assert next_click(gt, pred) == Click(x=4, y=4, positive=True)


def test_image_border_counts_as_boundary():
    gt = np.zeros((5, 12), dtype=np.int64)
    gt[:, :5] = 1  # touches the top, bottom and left borders
    click = next_click(gt, np.zeros(gt.shape, dtype=bool))
    # without the padding the left column would be farthest from any background pixel
    assert click == Click(x=2, y=2, positive=True)


def test_ignore_pixels_are_never_errors():
    gt = np.full((6, 6), -1, dtype=np.int64)
    gt[2, 2] = 1
    pred = np.ones(gt.shape, dtype=bool)  # everything predicted: only ignore pixels besides the object
    assert find_next_click(gt, pred) is None
    with pytest.raises(NoErrorLeftError):
        next_click(gt, pred)


def test_clicked_pixels_are_skipped():
    gt = square_gt()
    empty = np.zeros(gt.shape, dtype=bool)
    first = next_click(gt, empty)
    second = next_click(gt, empty, [first])
    assert second == Click(x=6, y=4, positive=True)


def test_random_tie_break_is_seeded_and_picks_a_maximum():
    gt = square_gt()
    empty = np.zeros(gt.shape, dtype=bool)
    picks = {next_click(gt, empty, rng=np.random.default_rng(seed)) for seed in range(40)}
    assert picks <= {Click(x, y, True) for x in (5, 6) for y in (4, 5)}
    assert len(picks) > 1
    a = next_click(gt, empty, rng=np.random.default_rng(7))
    assert a == next_click(gt, empty, rng=np.random.default_rng(7))


def test_bad_inputs_raise_value_error():
    gt = square_gt()
    with pytest.raises(ValueError, match="bool"):
        next_click(gt, np.zeros(gt.shape, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        next_click(gt, np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="values"):
        next_click(gt * 2, np.zeros(gt.shape, dtype=bool))
    with pytest.raises(ValueError, match="outside"):
        next_click(gt, np.zeros(gt.shape, dtype=bool), [Click(12, 0, True)])


masks = st.tuples(st.integers(3, 14), st.integers(3, 14)).flatmap(
    lambda shape: st.tuples(arrays(np.int64, shape, elements=st.sampled_from([-1, 0, 0, 1, 1])),
                            arrays(np.bool_, shape)))


@settings(max_examples=150, deadline=None)
@given(masks, st.integers(0, 6))
def test_click_properties_on_random_masks(gt_pred, n_previous):
    gt, pred = gt_pred
    clicks: list[Click] = []
    for _ in range(n_previous):  # earlier clicks from the simulator itself
        c = find_next_click(gt, pred, clicks)
        if c is None:
            break
        clicks.append(c)
    click = find_next_click(gt, pred, clicks)
    fn = (gt == 1) & ~pred
    fp = (gt == 0) & pred
    clicked = np.zeros(gt.shape, dtype=bool)
    for c in clicks:
        clicked[c.y, c.x] = True
    dt_fn = np.where(clicked, 0, brute_force_distance(fn))
    dt_fp = np.where(clicked, 0, brute_force_distance(fp))
    if click is None:
        assert not np.any((fn | fp) & ~clicked)
        return
    assert (click.x, click.y) not in {(c.x, c.y) for c in clicks}  # never clicked twice
    assert gt[click.y, click.x] != -1  # never on an ignore pixel
    region, dist = (fn, dt_fn) if click.positive else (fp, dt_fp)
    assert region[click.y, click.x]  # inside the chosen error region
    assert click.positive == (dt_fn.max() > dt_fp.max())  # the positive/negative rule, ties negative
    first = np.argmax(dist)
    assert (click.y, click.x) == divmod(int(first), gt.shape[1])  # first maximum, row-major
    ours_fn, ours_fp = error_distance_maps(gt, pred, clicks)
    np.testing.assert_array_equal(ours_fn, dt_fn)
    np.testing.assert_array_equal(ours_fp, dt_fp)


@settings(max_examples=60, deadline=None)
@given(masks, st.integers(0, 2 ** 31 - 1))
def test_random_tie_break_picks_a_maximum_on_random_masks(gt_pred, seed):
    gt, pred = gt_pred
    click = find_next_click(gt, pred, rng=np.random.default_rng(seed))
    deterministic = find_next_click(gt, pred)
    if deterministic is None:
        assert click is None
        return
    assert click.positive == deterministic.positive
    dt_fn, dt_fp = error_distance_maps(gt, pred)
    dist = dt_fn if click.positive else dt_fp
    assert dist[click.y, click.x] == dist.max()


def test_bounding_box_transform_equals_the_whole_image_transform(shared_dir):
    from clicksam.eval.datasets import load_dataset

    ds = load_dataset("DAVIS", shared_dir / "data")
    for obj in ds.objects[::70]:
        gt = ds.decode_gt(obj).astype(np.int64)
        pred = np.roll(gt == 1, (9, -13), axis=(0, 1))
        pred[:40, :60] = True  # a false positive touching the image corner
        ours_fn, ours_fp = error_distance_maps(gt, pred)
        for region, ours in (((gt == 1) & ~pred, ours_fn), ((gt == 0) & pred, ours_fp)):
            np.testing.assert_array_equal(ours, np.sqrt(squared_distance_map(region)))


def spec_reference_click(gt, pred, clicks):
    """SPEC §7.1 written out literally on the whole image (the RITM formulation, exact distances)."""
    not_ignore = gt != -1
    dt_fn = squared_distance_map((gt == 1) & ~pred & not_ignore)
    dt_fp = squared_distance_map((gt == 0) & pred & not_ignore)
    not_clicked = np.ones(gt.shape, dtype=np.int64)
    for c in clicks:
        not_clicked[c.y, c.x] = 0
    dt_fn, dt_fp = dt_fn * not_clicked, dt_fp * not_clicked
    positive = dt_fn.max() > dt_fp.max()
    ys, xs = np.where(dt_fn == dt_fn.max()) if positive else np.where(dt_fp == dt_fp.max())
    return Click(int(xs[0]), int(ys[0]), bool(positive))


def test_click_sequences_match_the_literal_spec_on_benchmark_masks(shared_dir):
    from clicksam.eval.datasets import load_dataset

    rng = np.random.default_rng(0)
    for name in ("GrabCut", "DAVIS"):
        ds = load_dataset(name, shared_dir / "data")
        for obj in ds.objects[::60]:
            gt = ds.decode_gt(obj).astype(np.int64)
            pred = np.zeros(gt.shape, dtype=bool)
            clicks: list[Click] = []
            for _ in range(8):  # a crude "model": the object shifted, plus a spurious blob
                ours = next_click(gt, pred, clicks)
                assert ours == spec_reference_click(gt, pred, clicks)
                clicks.append(ours)
                dy, dx = rng.integers(-8, 9, size=2)
                pred = np.roll(gt == 1, (int(dy), int(dx)), axis=(0, 1))
                y, x = rng.integers(0, gt.shape[0] - 30), rng.integers(0, gt.shape[1] - 30)
                pred[y:y + 30, x:x + 30] = bool(rng.integers(0, 2))
