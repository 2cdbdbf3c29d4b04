"""Each loss against a direct, pixel-by-pixel formula written with plain Python math."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clicksam.train import losses


def _data(seed: int = 0, b: int = 3, h: int = 5, w: int = 6):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, 1, h, w, generator=g, dtype=torch.float64) * 3
    target = (torch.rand(b, 1, h, w, generator=g) > 0.5).double()
    target[torch.rand(b, 1, h, w, generator=g) < 0.15] = -1
    return logits, target


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _pixels(logits, target, i):
    return list(zip(logits[i].flatten().tolist(), target[i].flatten().tolist()))


def test_nfl_matches_direct_formula():
    logits, target = _data()
    got = losses.normalized_focal_loss(logits, target, alpha=0.5, gamma=2.0)
    for i in range(logits.shape[0]):
        px = [(x, y) for x, y in _pixels(logits, target, i) if y >= 0]
        pts = [_sig(x) if y == 1 else 1 - _sig(x) for x, y in px]
        betas = [(1 - pt) ** 2 for pt in pts]
        scale = len(px) / sum(betas)
        terms = [-0.5 * b * scale * math.log(pt) for b, pt in zip(betas, pts)]
        assert got[i].item() == pytest.approx(sum(terms) / len(px), rel=1e-6)


def test_nfl_normaliser_is_detached():
    logits, target = _data(1)
    logits.requires_grad_(True)
    losses.normalized_focal_loss(logits, target).sum().backward()
    # Gradient of the detached-normaliser formula, by finite differences on a copy whose scale is frozen.
    x = logits.detach().clone()
    y = target
    valid = (y >= 0).double()
    p = torch.sigmoid(x)
    pt = torch.where(y > 0, p, 1 - p)
    beta = (1 - pt) ** 2 * valid
    scale = valid.flatten(1).sum(1) / beta.flatten(1).sum(1)

    def frozen(z):
        pz = torch.sigmoid(z)
        ptz = torch.where(y > 0, pz, 1 - pz)
        t = -0.5 * (1 - ptz) ** 2 * scale[:, None, None, None] * torch.log(ptz) * valid
        return (t.flatten(1).sum(1) / valid.flatten(1).sum(1)).sum()

    expected = torch.autograd.functional.jacobian(frozen, x)
    assert torch.allclose(logits.grad, expected, atol=1e-9)


def test_weighted_nfl_matches_direct_formula():
    logits, target = _data(2)
    weight = torch.rand(logits.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.1
    got = losses.weighted_normalized_focal_loss(logits, target, weight, alpha=0.25, gamma=1.5)
    for i in range(logits.shape[0]):
        rows = [(x, y, w) for (x, y), w in zip(_pixels(logits, target, i), weight[i].flatten().tolist()) if y >= 0]
        pts = [_sig(x) if y == 1 else 1 - _sig(x) for x, y, _ in rows]
        betas = [(1 - pt) ** 1.5 for pt in pts]
        scale = len(rows) / sum(betas)
        num = sum(w * -(0.25 if y == 1 else 0.75) * b * scale * math.log(pt) for (x, y, w), b, pt in zip(rows, betas, pts))
        assert got[i].item() == pytest.approx(num / sum(w for _, _, w in rows), rel=1e-6)


def test_bce_dice_iou_match_direct_formulas():
    logits, target = _data(3)
    bce = losses.bce_loss(logits, target)
    dice = losses.dice_loss(logits, target)
    iou = losses.soft_iou_loss(logits, target)
    hard = losses.mask_iou(logits, target)
    for i in range(logits.shape[0]):
        px = [(x, y) for x, y in _pixels(logits, target, i) if y >= 0]
        ps = [_sig(x) for x, _ in px]
        ys = [y for _, y in px]
        ref_bce = -sum(y * math.log(p) + (1 - y) * math.log(1 - p) for p, y in zip(ps, ys)) / len(px)
        inter = sum(p * y for p, y in zip(ps, ys))
        ref_dice = 1 - (2 * inter + 1) / (sum(ps) + sum(ys) + 1)
        ref_iou = 1 - (inter + 1) / (sum(ps) + sum(ys) - inter + 1)
        hard_inter = sum(1 for (x, y) in px if x > 0 and y == 1)
        hard_union = sum(1 for (x, y) in px if x > 0 or y == 1)
        assert bce[i].item() == pytest.approx(ref_bce, rel=1e-6)
        assert dice[i].item() == pytest.approx(ref_dice, rel=1e-6)
        assert iou[i].item() == pytest.approx(ref_iou, rel=1e-6)
        assert hard[i].item() == pytest.approx(hard_inter / hard_union, rel=1e-6)


def test_iou_prediction_loss():
    logits, target = _data(4)
    pred = torch.tensor([0.2, 0.9, 0.5], dtype=torch.float64)
    got = losses.iou_prediction_loss(pred, logits, target)
    assert torch.allclose(got, (pred - losses.mask_iou(logits, target)) ** 2)
    with pytest.raises(ValueError, match="B vector"):
        losses.iou_prediction_loss(pred[:2], logits, target)


def test_click_point_loss_reads_the_clicked_cells():
    logits = torch.full((2, 1, 256, 256), -20.0)
    logits[0, 0, 10, 20] = 20.0  # the cell holding frame pixel (x=81, y=41)
    coords = torch.tensor([[[81.0, 41.0], [500.0, 500.0], [0.0, 0.0]], [[100.0, 100.0], [0.0, 0.0], [0.0, 0.0]]])
    labels = torch.tensor([[1, 0, -1], [1, -1, -1]])
    got = losses.click_point_loss(logits, coords, labels)
    # Sample 0: positive on a confident-object cell (0 error), negative on background (0 error).
    assert got[0].item() == pytest.approx(0.0, abs=1e-6)
    # Sample 1: positive on background: error (σ(-20) - 1)² ≈ 1.
    assert got[1].item() == pytest.approx(1.0, abs=1e-6)


def test_boundary_weight_marks_the_band():
    target = torch.zeros(1, 1, 20, 20)
    target[0, 0, 5:15, 5:15] = 1
    w = losses.boundary_weight(target, width=1, boost=3.0)
    assert w[0, 0, 10, 10] == 1 and w[0, 0, 0, 0] == 1
    assert w[0, 0, 5, 10] == 4 and w[0, 0, 4, 10] == 4


def test_shape_errors_are_readable():
    with pytest.raises(ValueError, match="same shape"):
        losses.bce_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))
    assert np.isfinite(losses.normalized_focal_loss(torch.zeros(1, 1, 2, 2), -torch.ones(1, 1, 2, 2)).item())


def test_weighted_bce_is_the_weighted_mean_and_ignores_ignored_pixels():
    logits = torch.tensor([[[[2.0, -1.0, 0.5, 3.0]]]])
    target = torch.tensor([[[[1.0, 1.0, 0.0, -1.0]]]])
    weight = torch.tensor([[[[1.0, 3.0, 0.5, 9.0]]]])
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits[..., :3], target[..., :3].clamp(min=0),
                                                               reduction="none")
    expected = (per * weight[..., :3]).sum() / weight[..., :3].sum()
    assert torch.allclose(losses.bce_loss(logits, target, weight=weight), expected.view(1))
    assert torch.allclose(losses.bce_loss(logits, target, weight=torch.ones_like(logits)), losses.bce_loss(logits, target))
    with pytest.raises(ValueError, match="must match"):
        losses.bce_loss(logits, target, weight=torch.ones(1, 1, 1, 3))
