"""Stable-SAM's prompt protocol: the SPEC §3 noise model, seeded prompts, metrics on oracles."""
from __future__ import annotations

import numpy as np
import pytest

from clicksam.eval.prompts import evaluate_prompts, gt_box, make_prompts, noisy_box, random_points
from clicksam.eval.segmenter import ErodedGtOracle, Prompt, Segmenter, SegmenterOutput

from .conftest import square_mask


def gt_square():
    return (square_mask(10, 20, 20) > 0).astype(np.int8)


def test_gt_box_is_tight_and_inclusive():
    assert gt_box(gt_square()) == (20.0, 10.0, 39.0, 29.0)
    with pytest.raises(ValueError):
        gt_box(np.zeros((4, 4), np.int8))


def test_noisy_box_follows_the_noise_model():
    box = (100.0, 50.0, 300.0, 150.0)  # w 200, h 100, centre (200, 100)
    rng = np.random.default_rng(0)
    for _ in range(300):
        x0, y0, x1, y1 = noisy_box(box, (1000, 1000), 0.4, rng)
        cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        assert abs(cx - 200) <= 0.4 * 100 + 1e-9 and abs(cy - 100) <= 0.4 * 50 + 1e-9
        assert 0.6 * 200 - 1e-9 <= w <= 1.4 * 200 + 1e-9 and 0.6 * 100 - 1e-9 <= h <= 1.4 * 100 + 1e-9
    assert noisy_box(box, (1000, 1000), 0.0, rng) == box
    for _ in range(100):  # near the corner: clipped to the image, never inverted
        x0, y0, x1, y1 = noisy_box((0, 0, 10, 10), (12, 12), 0.5, rng)
        assert 0 <= x0 < x1 <= 11 and 0 <= y0 < y1 <= 11


def test_points_are_on_the_object_distinct_and_seeded():
    gt = gt_square()
    points = random_points(gt, 3, np.random.default_rng(1))
    assert len({(p.x, p.y) for p in points}) == 3
    assert all(gt[p.y, p.x] == 1 and p.positive for p in points)
    a = make_prompts(gt, "obj", "point3", 20, seed=5)
    assert a == make_prompts(gt, "obj", "point3", 20, seed=5)
    assert a != make_prompts(gt, "other", "point3", 20, seed=5)
    assert len(make_prompts(gt, "obj", "gt_box")) == 1
    assert all(p.box is not None and not p.clicks for p in make_prompts(gt, "obj", "noisy_box", 4))


class BoxCropper(Segmenter):
    """Predicts the object inside the box (or the whole object for points): IoU known by hand."""

    threshold = 0.49

    def __init__(self, gt):
        self.gt = gt

    def set_image(self, image, image_id):
        pass

    def step(self, prompt: Prompt, prev_state=None):
        out = (self.gt == 1).astype(np.float32)
        if prompt.box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in prompt.box)
            keep = np.zeros_like(out)
            keep[y0:y1 + 1, x0:x1 + 1] = 1
            out *= keep
        return SegmenterOutput(out)


def test_evaluate_prompts_metrics_on_oracles():
    gt = gt_square()
    record = evaluate_prompts(BoxCropper(gt), gt, "obj", num_prompts=8, box_noise=0.4, seed=0)
    assert record["n_steps"] == 8 * 3 + 1
    types = record["prompts"]
    assert types["gt_box"]["ious"] == [1.0] and types["gt_box"]["stability"] is None
    assert types["point1"]["ious"] == [1.0] * 8 and types["point1"]["stability"] == 1.0
    noisy = types["noisy_box"]
    assert all(0 < v <= 1 for v in noisy["ious"]) and min(noisy["ious"]) < 1.0
    assert 0 < noisy["stability"] < 1.0
    for prompt, value in zip(noisy["prompts"], noisy["ious"]):  # IoU = object area kept by the box
        x0, y0, x1, y1 = (int(round(v)) for v in prompt["box"])
        kept = max(0, min(x1, 39) - max(x0, 20) + 1) * max(0, min(y1, 29) - max(y0, 10) + 1)
        assert value == pytest.approx(kept / 400)
    eroded = evaluate_prompts(ErodedGtOracle(lambda _i: gt, (2,)), gt, "obj", ("point1",), num_prompts=3)
    assert eroded["prompts"]["point1"]["ious"] == pytest.approx([0.64] * 3)
    assert eroded["prompts"]["point1"]["stability"] == 1.0
