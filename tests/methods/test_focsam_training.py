"""``clicksam train --method focsam``: the refine-step draw, unpadded decodes, the loss, the run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clicksam.methods.focsam.training import FocSamTraining, decode_grouped, truncated_geometric
from clicksam.train import prompts
from clicksam.train.method import Batch
from clicksam.training.methods import get_method
from clicksam.train.prompts import SampleRandom


def test_refine_step_follows_the_truncated_geometric_law():
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(20000, generator=gen)
    tops = torch.full((20000,), 4, dtype=torch.long)
    draws = truncated_geometric(u, tops, 0.6).numpy()
    freq = np.bincount(draws, minlength=5)[1:] / len(draws)
    want = np.array([0.6**k for k in range(1, 5)])
    np.testing.assert_allclose(freq, want / want.sum(), atol=0.015)
    assert (truncated_geometric(u[:50], torch.ones(50, dtype=torch.long), 0.6) == 1).all()


def test_decodes_see_only_each_samples_real_clicks():
    coords = torch.arange(2 * 4 * 2, dtype=torch.float32).view(2, 4, 2)
    labels = torch.tensor([[1, -1, 0, -1], [1, 0, 1, 1]])
    clicks = prompts.Clicks(coords, labels, torch.zeros(2, 8, 8, dtype=torch.bool))
    seen = []

    def decode(idx, c, lab, mask_input):
        seen.append((idx.tolist(), c.clone(), lab.clone(), mask_input is None))
        return c.sum(dim=(1, 2)).view(-1, 1, 1, 1).expand(-1, 1, 2, 2), lab.float().sum(1).view(-1, 1, 1)

    prev = torch.zeros(2, 1, 2, 2)
    logits, tokens = decode_grouped(decode, clicks, prev, torch.tensor([True, False]), torch.tensor([1, 0]))
    assert sorted(len(s[2][0]) for s in seen) == [2, 4] and all((s[2] >= 0).all() for s in seen)
    first = next(s for s in seen if s[0] == [0])
    assert torch.equal(first[1][0], coords[0, [0, 2]]) and not first[3]  # real clicks 0 and 2, with prev
    assert logits[0, 0, 0, 0] == coords[1].sum() and logits[1, 0, 0, 0] == coords[0, [0, 2]].sum()
    assert tokens[0].item() == 3 and tokens[1].item() == 1


def _batch(seeds):
    target = torch.zeros(len(seeds), 1, 1024, 1024, dtype=torch.int8)
    target[0, 0, 100:400, 200:520] = 1
    if len(seeds) > 1:
        target[1, 0, 600:680, 40:900] = 1
        target[1, 0, 900:] = -1
    gen = torch.Generator().manual_seed(7)
    return Batch(embedding=torch.randn(len(seeds), 256, 64, 64, generator=gen), target=target,
                 input_size=torch.tensor([[1024, 1024]] * len(seeds)), rng=SampleRandom(seeds), step=0)


@pytest.mark.slow
def test_loss_trains_only_the_refiner_and_is_reproducible():
    from clicksam import build_sam
    from clicksam.methods.focsam import FocusRefiner

    assert get_method("focsam") is FocSamTraining
    torch.manual_seed(0)
    model = build_sam("tiny", methods=["focsam"])
    model.focus_refiner = FocusRefiner(depth=2)
    method = FocSamTraining(model, {"max_clicks": 3, "click_map_size": 64})
    method.prepare()
    method.train_mode()
    out = method.compute_loss(_batch([11, 12]))
    out.loss.backward()
    assert torch.isfinite(out.loss) and 1 <= out.metrics["refine_at"] <= 3
    assert all(p.grad is not None for p in model.focus_refiner.parameters())
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("focus_refiner."))
    assert 0.0 <= float(out.metrics["iou_base"]) <= 1.0  # the frozen decoder on F, the number to beat
    again = method.compute_loss(_batch([11, 12]))
    assert torch.allclose(out.loss, again.loss)
    quiet = FocSamTraining(model, {"max_clicks": 3, "click_map_size": 64, "base_iou_metric": False})
    without = quiet.compute_loss(_batch([11, 12]))
    assert "iou_base" not in without.metrics and torch.allclose(without.loss, out.loss)
    with pytest.raises(ValueError, match="expand_max"):
        FocSamTraining(model, {"expand_max": 0.5})


@pytest.mark.slow
def test_train_cli_writes_a_method_file_that_loads(tmp_path, monkeypatch):
    """A 2-step run of the real trainer on synthetic scenes, then build_sam with its method file."""
    import functools

    from clicksam import build_sam
    from clicksam.cli import main
    from clicksam.methods.focsam import FocusRefiner, stage

    # a 2-block refiner keeps this plumbing test affordable on a CPU (same code, fewer blocks)
    monkeypatch.setattr(stage, "FocusRefiner", functools.partial(FocusRefiner, depth=2))

    config = {
        "method": "focsam", "model": "tiny", "device": "cpu", "seed": 1,
        "data": {"datasets": [{"type": "synthetic", "count": 2, "seed": 0, "size": [96, 128]}], "num_workers": 0,
                 "min_area": 20},
        "optim": {"lr": 1e-3, "warmup_steps": 1, "schedule": "linear"},
        "batch_size": 1, "steps": 2, "out_dir": str(tmp_path / "run"), "checkpoint_every": 100, "log_every": 1,
        "options": {"max_clicks": 2, "click_map_size": 64},
    }
    (tmp_path / "focsam.json").write_text(json.dumps(config))
    assert main(["train", "--config", str(tmp_path / "focsam.json")]) == 0
    method_file = tmp_path / "run" / "method.safetensors"
    model = build_sam("tiny", checkpoint=[method_file])
    assert getattr(model.focus_refiner, "clicksam_trained", False)
    assert not torch.allclose(model.focus_refiner.blocks[0].img2cls.gamma1, torch.ones(256))  # it moved
    # the file carries the refiner and the (frozen) decoder it was trained with, and nothing else
    from safetensors import safe_open

    with safe_open(str(method_file), "pt") as f:
        prefixes = {k.split(".", 1)[0] for k in f.keys()}
        decoder_weight = f.get_tensor("mask_decoder.iou_token.weight")
    assert prefixes == {"focus_refiner", "mask_decoder"}
    torch.manual_seed(0)
    assert torch.equal(decoder_weight, build_sam("tiny").mask_decoder.iou_token.weight)  # frozen: unchanged
    assert torch.equal(model.mask_decoder.iou_token.weight, decoder_weight)
