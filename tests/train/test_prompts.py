"""Training-time prompt simulation: distances, iterative clicks, multi-point, boxes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clicksam.distance import squared_distance_map
from clicksam.train import distance as train_distance
from clicksam.train import prompts
from clicksam.train.distance import beyond_fraction, squared_distance_maps


def _target(b: int = 3, size: int = 64) -> torch.Tensor:
    t = torch.zeros(b, 1, size, size)
    t[0, 0, 10:30, 12:40] = 1
    t[1, 0, 40:60, 5:20] = 1
    t[1, 0, 0:5, :] = -1
    if b > 2:
        t[2, 0, 20:22, 5:60] = 1  # a thin bar
    return t


def test_torch_backend_gives_the_integers_of_the_package_distance(monkeypatch):
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 37, 29, generator=g) > 0.15
    masks[2] = True  # no False pixel: only the border bounds the distances
    got = squared_distance_maps(masks, backend="torch", chunk_elements=5000)
    assert got.dtype == torch.int64
    for i in range(3):
        np.testing.assert_array_equal(got[i].numpy(), squared_distance_map(masks[i].numpy()))
    assert torch.equal(got, squared_distance_maps(masks))  # auto: the numpy function on CPU tensors
    monkeypatch.setattr(train_distance, "_FLOAT32_EXACT", 0)  # the int64 arithmetic of very large maps
    assert torch.equal(squared_distance_maps(masks, backend="torch", chunk_elements=5000), got)
    assert squared_distance_maps(torch.zeros(0, 4, 5, dtype=torch.bool), backend="torch").shape == (0, 4, 5)
    with pytest.raises(ValueError, match="B×H×W"):
        squared_distance_maps(masks[0])
    with pytest.raises(ValueError, match="backend"):
        squared_distance_maps(masks, backend="opencv")


def test_beyond_fraction_is_exact_at_the_boundary():
    # distance 10 vs max 17 with ratio 1.7: 10 > 17 / 1.7 is false (equal), 11 > 10 is true
    squared = torch.tensor([[[100, 121, 99]]])
    assert beyond_fraction(squared, torch.tensor([289]), 1.7).tolist() == [[[False, True, False]]]
    assert beyond_fraction(squared, torch.tensor([400]), 2).tolist() == [[[False, True, False]]]
    with pytest.raises(ValueError, match="ratio"):
        beyond_fraction(squared, torch.tensor([289]), 0.5)


def test_sample_streams_do_not_depend_on_the_batch():
    a = prompts.SampleRandom([5, 6, 7]).uniform(4)
    b = prompts.SampleRandom([6]).uniform(4)
    assert torch.equal(a[1], b[0])


def test_geometric_counts_follow_gamma():
    counts = prompts.geometric_counts(prompts.SampleRandom(range(4000)), max_count=20, gamma=0.6)
    assert counts.min() >= 1 and counts.max() <= 20
    freq = torch.bincount(counts, minlength=21).float() / len(counts)
    expected_1 = 0.6 / sum(0.6**k for k in range(1, 21))
    assert freq[1].item() == pytest.approx(expected_1, abs=0.03)
    assert freq[2].item() / freq[1].item() == pytest.approx(0.6, abs=0.08)


def test_first_click_is_positive_and_deep_inside():
    target = _target()
    clicks = prompts.Clicks.empty(3, 64)
    empty = torch.zeros(3, 1, 64, 64, dtype=torch.bool)
    clicks = prompts.sample_next_click(target, empty, clicks, prompts.SampleRandom([1, 2, 3]))
    assert clicks.labels[:, 0].tolist() == [1, 1, 1]
    cells = ((clicks.coords[:, 0] + 0.5) / 16 - 0.5).round().long()  # back to (col, row)
    sq = squared_distance_maps(target[:, 0] == 1)
    for b in range(3):
        col, row = cells[b].tolist()
        assert target[b, 0, row, col] == 1
        assert 1.7 ** 2 * sq[b, row, col] > sq[b].max()
        assert clicks.clicked[b, row, col]


def test_sample_next_click_negative_on_false_positive_and_padding_when_perfect():
    target = _target(2)
    pred = target == 1
    pred[0, 0, 45:64, 40:64] = True  # a large false positive in sample 0
    clicks = prompts.sample_next_click(target, pred, prompts.Clicks.empty(2, 64), prompts.SampleRandom([0, 1]))
    assert clicks.labels[:, 0].tolist() == [0, -1]
    col, row = ((clicks.coords[0, 0] + 0.5) / 16 - 0.5).round().long().tolist()
    assert 45 <= row < 64 and 40 <= col < 64
    inactive = prompts.sample_next_click(target, pred, prompts.Clicks.empty(2, 64), prompts.SampleRandom([0, 1]),
                                  active=torch.tensor([False, True]))
    assert inactive.labels[:, 0].tolist() == [-1, -1]


def test_simulated_rounds_stop_at_each_count():
    target = _target()
    calls = []

    def decode(index, coords, labels, mask_input):
        calls.append((index.tolist(), mask_input is None, coords.shape[1]))
        return torch.full((len(index), 1, 256, 256), -5.0)  # always predicts nothing

    counts = torch.tensor([1, 3, 2])
    clicks, prev, has_prev = prompts.simulate_iterative_clicks(decode, target, counts, prompts.SampleRandom([4, 5, 6]))
    assert calls == [([1, 2], True, 1), ([1], False, 2)]
    assert clicks.num_clicks.tolist() == [1, 3, 2]
    assert has_prev.tolist() == [False, True, True]
    assert prev is not None and prev.shape == (3, 1, 256, 256)


def test_multi_point_prompts_respect_the_object():
    target = _target()
    coords, labels = prompts.multi_point_prompts(target, prompts.SampleRandom([7, 8, 9]), max_points=6)
    assert coords.shape == (3, 12, 2) and labels.shape == (3, 12)
    cells = ((coords + 0.5) / 16 - 0.5).round().long()
    for b in range(3):
        assert labels[b, 0] == 1
        for (col, row), lab in zip(cells[b].tolist(), labels[b].tolist()):
            if lab == 1:
                assert target[b, 0, row, col] == 1
            elif lab == 0:
                assert target[b, 0, row, col] == 0


def test_random_positive_points_are_distinct_object_cells():
    target = _target()
    coords, labels = prompts.random_positive_points(target, prompts.SampleRandom([1, 2, 3]), 1, 5)
    counts = (labels == 1).sum(1)
    assert ((counts >= 1) & (counts <= 5)).all()
    for b in range(3):
        pts = coords[b][labels[b] == 1]
        assert len({tuple(p) for p in pts.tolist()}) == len(pts)


def test_boxes_clean_and_noisy():
    target = _target(2)
    boxes = prompts.object_boxes(target)
    assert boxes[0].tolist() == [12 * 16, 10 * 16, 40 * 16 - 1, 30 * 16 - 1]
    sizes = torch.tensor([[1024, 1024], [1024, 1024]])
    clean = prompts.noisy_boxes(boxes, sizes, prompts.SampleRandom([0, 1]), noise=0.0)
    assert torch.allclose(clean, boxes)
    clipped = prompts.noisy_boxes(boxes, torch.tensor([[1024, 1024], [700, 1024]]), prompts.SampleRandom([0, 1]), 0.0)
    assert clipped[1, 3] == 699
    many = prompts.noisy_boxes(boxes[:1].repeat(500, 1), sizes[:1].repeat(500, 1), prompts.SampleRandom(range(500)), 0.5)
    w = boxes[0, 2] - boxes[0, 0]
    assert ((many[:, 2] - many[:, 0]) <= 1.5 * w + 1).all()
    assert (many[:, 0] >= 0).all() and (many[:, 2] <= 1023).all()
    cx = (many[:, 0] + many[:, 2]) / 2
    assert (cx - (boxes[0, 0] + boxes[0, 2]) / 2).abs().max() > 0.15 * w  # it really moves
    with pytest.raises(ValueError, match="box noise"):
        prompts.noisy_boxes(boxes, sizes, prompts.SampleRandom([0, 1]), noise=1.5)
