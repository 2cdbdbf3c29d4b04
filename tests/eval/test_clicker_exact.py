"""The click simulator against an independent exact implementation of RITM's rule (SPEC §7.1),
on 1200 random cases including constructed exact ties, each run twice.

The reference below shares no code with the package: squared distances by brute force over every
(error pixel, outside pixel) pair of the 1-px zero-padded region, the clicked pixels zeroed, the
positive/negative decision on those integers (a tie is negative) and the first maximum found by
scanning rows then columns. A case is a short click sequence: after each click a toy model paints
a small disk around it with the ground truth, so later clicks see new error regions.
"""
from __future__ import annotations

import numpy as np

from clicksam.eval import Click, find_next_click

# squared radii with two representations as a sum of two squares: 125 = 10² + 5² = 11² + 2², ...
TIE_SQUARES = {25: ((5, 0), (4, 3)), 50: ((7, 1), (5, 5)), 65: ((8, 1), (7, 4)), 85: ((9, 2), (7, 6)),
               125: ((10, 5), (11, 2))}
CASES = 1200


def reference_squared(region: np.ndarray) -> np.ndarray:
    height, width = region.shape
    out = np.zeros((height, width), dtype=np.int64)
    on_y, on_x = np.nonzero(region)
    off_y, off_x = np.nonzero(~np.pad(region, 1))
    off_y, off_x = off_y - 1, off_x - 1  # back to image coordinates; the ring is at -1 and H / W
    if on_y.size:  # every (on, off) pair at once
        out[on_y, on_x] = ((on_y[:, None] - off_y) ** 2 + (on_x[:, None] - off_x) ** 2).min(axis=1)
    return out


def reference_click(gt: np.ndarray, pred: np.ndarray, clicks: list[Click]) -> tuple[Click | None, int, int]:
    """The rule, plus (how many pixels reach the chosen maximum, the maximum) for the tie counts."""
    dt_fn = reference_squared((gt == 1) & ~pred)
    dt_fp = reference_squared((gt == 0) & pred)
    for c in clicks:
        dt_fn[c.y, c.x] = dt_fp[c.y, c.x] = 0
    max_fn, max_fp = int(dt_fn.max()), int(dt_fp.max())
    if max_fn == 0 and max_fp == 0:
        return None, 0, 0
    positive = max_fn > max_fp
    dist, best = (dt_fn, max_fn) if positive else (dt_fp, max_fp)
    first = None
    for y in range(gt.shape[0]):
        for x in range(gt.shape[1]):
            if dist[y, x] == best and first is None:
                first = Click(x, y, positive)
    reaching = int((dist == best).sum()) + int(max_fn == max_fp)  # a fn/fp tie counts as a tie too
    return first, reaching, best


def tie_disk(shape: tuple[int, int], centre: tuple[int, int], r2: int, variant: int) -> np.ndarray:
    """The open digital disk |p - centre|² < r2, whose centre lies at squared distance exactly r2;
    variant 1 also fills the points of the first representation of r2, so the centre's nearest
    outside pixels are those of the second (the same distance reached along other vectors)."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    dy, dx = yy - centre[0], xx - centre[1]
    disk = dy ** 2 + dx ** 2 < r2
    if variant:
        a, b = TIE_SQUARES[r2][0]
        disk |= ((np.abs(dy) == a) & (np.abs(dx) == b)) | ((np.abs(dy) == b) & (np.abs(dx) == a))
    return disk


def random_case(i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(gt with -1/0/1, pred): random fields, rectangles and shifted predictions, or two disks
    with the same exact distance (a fn/fp tie, or two maxima in one region)."""
    if i % 3 == 0:
        r2 = list(TIE_SQUARES)[int(rng.integers(len(TIE_SQUARES)))]
        radius = int(np.ceil(np.sqrt(r2)))
        side = 2 * radius + 2
        height, width = side + int(rng.integers(0, 6)), 2 * side + int(rng.integers(0, 6))
        if rng.random() < 0.5:
            height, width = width, height
        first = (radius + 1, radius + 1)
        second = (height - radius - 2, width - radius - 2)
        a = tie_disk((height, width), first, r2, int(rng.integers(2)))
        b = tie_disk((height, width), second, r2, int(rng.integers(2)))
        gt = np.where(rng.random((height, width)) < 0.05, -1, 0)
        gt[a] = 1
        pred = np.zeros((height, width), dtype=bool)
        if i % 2:  # the same distance in a false negative and a false positive: a tie, so negative
            gt[b] = 0
            pred[b] = True
        else:  # two maxima in the false negatives: the first in row-major order
            gt[b] = 1
        return gt.astype(np.int64), pred
    height, width = (int(v) for v in rng.integers(1, 22, size=2))
    if i % 3 == 1:
        gt = rng.choice([-1, 0, 1], size=(height, width), p=[0.1, 0.45, 0.45])
        pred = rng.random((height, width)) < rng.uniform(0, 1)
    else:
        gt = np.where(rng.random((height, width)) < 0.05, -1, 0)
        for _ in range(int(rng.integers(1, 4))):
            y0, x0 = int(rng.integers(height)), int(rng.integers(width))
            gt[y0:y0 + int(rng.integers(1, 12)), x0:x0 + int(rng.integers(1, 12))] = 1
        pred = np.roll(gt == 1, tuple(int(v) for v in rng.integers(-3, 4, size=2)), axis=(0, 1))
    return gt.astype(np.int64), pred


def toy_model(gt: np.ndarray, pred: np.ndarray, click: Click) -> np.ndarray:
    """The prediction after a click: a disk of radius 2 around it painted with the ground truth."""
    yy, xx = np.mgrid[:gt.shape[0], :gt.shape[1]]
    near = (yy - click.y) ** 2 + (xx - click.x) ** 2 <= 4
    out = pred.copy()
    out[near & (gt == 1)] = True
    out[near & (gt == 0)] = False
    return out


def realigned(a: np.ndarray, offset: int) -> np.ndarray:
    """A copy of ``a`` in a buffer starting ``offset`` bytes off its allocation (other alignment)."""
    buffer = np.zeros(a.nbytes + 64, dtype=np.uint8)
    out = np.ndarray(a.shape, dtype=a.dtype, buffer=buffer, offset=offset)
    out[...] = a
    return out


def simulate(gt: np.ndarray, pred: np.ndarray, steps: int) -> list[Click]:
    clicks: list[Click] = []
    for _ in range(steps):
        click = find_next_click(gt, pred, clicks)
        if click is None:
            break
        clicks.append(click)
        pred = toy_model(gt, pred, click)
    return clicks


def test_clicks_equal_the_exact_rule_and_a_rerun_on_1200_random_cases():
    rng = np.random.default_rng(19)
    steps, ties, ties_125, fn_fp_ties, negative_ties = 0, 0, 0, 0, 0
    for i in range(CASES):
        gt, pred = random_case(i, rng)
        expected, state = [], pred
        for _ in range(4):
            click, reaching, best = reference_click(gt, state, expected)
            if click is None:
                break
            steps += 1
            ties += reaching > 1
            ties_125 += reaching > 1 and best == 125
            fn_fp_ties += i % 6 == 3 and len(expected) == 0 and not click.positive
            expected.append(click)
            state = toy_model(gt, state, click)
        first = simulate(gt, pred, 4)
        again = simulate(realigned(gt, 8 * (i % 3) + 8), realigned(pred, 1 + i % 7), 4)
        assert first == expected, f"case {i}: {first} != {expected}"
        assert again == first, f"case {i}: the rerun gave {again}, the first run {first}"
        negative_ties += i % 6 == 3 and not first[0].positive
    # the cases exercise what they are meant to: many exact ties, at √125 too, fn/fp ties negative
    assert steps > 3 * CASES
    assert ties > 500 and ties_125 > 50
    assert fn_fp_ties == negative_ties == CASES // 6
