"""``clicksam train --method sam-ref``: the loss step, gradient isolation, learning."""
from __future__ import annotations

import pytest
import torch

from clicksam import build_sam
from clicksam.methods.sam_ref.training import (SamRefTraining, crop_target, error_target,
                                               normalised_images)
from clicksam.train.method import Batch
from clicksam.training.methods import get_method
from clicksam.train.prompts import SampleRandom

S = 1024


def make_batch(model, seeds=(1, 2)) -> Batch:
    """Padded images (1024×768, 640×1024) with a bar-and-disc object each, one per seed."""
    sizes = [(1024, 768), (640, 1024)][:len(seeds)]
    b = len(sizes)
    gen = torch.Generator().manual_seed(0)
    image = torch.zeros(b, 3, S, S, dtype=torch.uint8)
    target = torch.full((b, 1, S, S), -1, dtype=torch.int8)
    rows, cols = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    for i, (h, w) in enumerate(sizes):
        image[i, :, :h, :w] = torch.randint(0, 90, (3, h, w), generator=gen, dtype=torch.uint8)
        obj = ((rows - h / 2) ** 2 + (cols - w / 2) ** 2 <= (min(h, w) / 5) ** 2)
        obj |= (rows > h / 2 - 4) & (rows < h / 2 + 4) & (cols > w / 8) & (cols < 7 * w / 8)  # a thin bar
        obj &= (rows < h) & (cols < w)
        image[i, 0][obj] = 220
        target[i, 0, :h, :w] = 0
        target[i, 0][obj] = 1
    with torch.no_grad():
        emb = model.encode(normalised_images(model, image, torch.tensor(sizes)))
    return Batch(embedding=emb, target=target, input_size=torch.tensor(sizes), rng=SampleRandom(seeds),
                 step=0, image=image)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_sam("tiny", methods=["sam-ref"])


def test_registered_under_its_name():
    assert get_method("sam-ref") is SamRefTraining


def test_error_and_crop_targets():
    target = torch.tensor([[[[1.0, 0.0], [-1.0, 1.0]]]])
    logits = torch.tensor([[[[2.0, 3.0], [1.0, -1.0]]]])
    assert error_target(logits, target).tolist() == [[[[0.0, 1.0], [-1.0, 1.0]]]]
    big = torch.zeros(1, 1, 64, 64)
    big[..., 10:20, 30:40] = 1
    crop = crop_target(big, [(30, 10, 40, 20)], 32)
    assert crop.shape == (1, 1, 32, 32) and bool((crop == 1).all())


def test_normalised_images_pad_with_zeros_after_normalising(model):
    image = torch.full((1, 3, S, S), 0, dtype=torch.uint8)
    image[:, :, :100, :200] = 128
    out = normalised_images(model, image, torch.tensor([[100, 200]]))
    expected = model.preprocess(image[:, :, :100, :200].float())
    assert torch.equal(out, expected) and bool((out[..., 100:, :] == 0).all())


def test_loss_step_trains_only_the_refiner(model):
    method = SamRefTraining(model, {"max_clicks": 3})
    method.prepare()
    method.train_mode()
    out = method.compute_loss(make_batch(model))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert {"global_mask", "global_error", "patch_mask", "patch_error", "iou_sam", "iou_refined", "iou_patch_base", "iou_patch"} <= set(out.metrics)
    out.loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("sam_ref."):
            assert p.grad is not None, name
        else:
            assert p.grad is None and not p.requires_grad, name
    assert model.sam_ref.gfr.head_out.weight.grad.abs().sum() > 0
    assert model.sam_ref.lfr.head_out.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_options_are_checked(model):
    with pytest.raises(ValueError, match="no option"):
        SamRefTraining(model, {"learning_rate": 1.0})
    with pytest.raises(ValueError, match="'nfl' or 'bce'"):
        SamRefTraining(model, {"mask_loss": "focal"})
    bare = build_sam("tiny")
    with pytest.raises(ValueError, match="sam_ref"):
        SamRefTraining(bare)


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss_on_one_batch():
    torch.manual_seed(0)
    model = build_sam("tiny", methods=["sam-ref"])
    method = SamRefTraining(model, {"max_clicks": 2})
    method.prepare()
    method.train_mode()
    batch = make_batch(model, seeds=(3,))
    optimizer = torch.optim.AdamW([p for _, p in method.trainable_parameters()], lr=3e-3)
    values = []
    for _ in range(3):
        batch.rng = SampleRandom((3,))  # the same clicks every step
        out = method.compute_loss(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        values.append(float(out.loss.detach()))
    assert values[-1] < values[0]


def test_sam_logits_follow_the_session_rule(model):
    """A lone first click gets SAM's multimask output with the best predicted IoU (as
    InteractiveSession decodes it), later clicks the single-mask output."""
    method = SamRefTraining(model)
    emb = make_batch(model).embedding
    coords = torch.tensor([[[300.0, 400.0]], [[500.0, 320.0]]])
    labels = torch.ones(2, 1, dtype=torch.long)
    with torch.no_grad():
        multi = model.decode(emb, (coords, labels), multimask_output=True)
        best = multi.iou_predictions.argmax(1)
        expected = multi.low_res_logits[torch.arange(2), best][:, None]
        got = method._decode(emb, coords, labels, None)
        assert got.shape == (2, 1, 256, 256)
        assert torch.equal(got, expected)
        prev = torch.randn(2, 1, 256, 256)
        coords2 = torch.cat([coords, coords + 40], 1)
        labels2 = torch.ones(2, 2, dtype=torch.long)
        single = model.decode(emb, (coords2, labels2), mask_input=prev, multimask_output=False).low_res_logits
        assert torch.equal(method._decode(emb, coords2, labels2, prev), single)


def test_the_bce_option_swaps_nfl_for_bce_and_keeps_the_rest(model, monkeypatch):
    """``mask_loss="bce"`` puts (boundary-weighted) BCE where SPEC §5 has (weighted) NFL; the
    Dice and error-map terms are the same."""
    from clicksam.train import losses

    calls = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls.append((name, "weight" in kwargs))
            return fn(*args, **kwargs)
        monkeypatch.setattr(losses, name, wrapped)

    for name in ("normalized_focal_loss", "bce_loss", "dice_loss"):
        spy(name, getattr(losses, name))
    for choice in ("nfl", "bce"):
        calls.clear()
        out = SamRefTraining(model, {"max_clicks": 2, "mask_loss": choice}).compute_loss(make_batch(model))
        assert torch.isfinite(out.loss)
        focal = [weighted for name, weighted in calls if name == "normalized_focal_loss"]
        bce = [weighted for name, weighted in calls if name == "bce_loss"]
        if choice == "nfl":  # global NFL + weighted patch NFL; BCE only on the two error maps
            assert False in focal and True in focal and bce and not any(bce)
        else:  # no focal term at all; global BCE, weighted patch BCE and the error maps' BCE
            assert not focal and True in bce and bce.count(False) >= 3
        assert ("dice_loss", False) in calls


def test_patch_dice_adds_a_weighted_dice_term_on_the_patch(model, monkeypatch):
    """``patch_dice=w`` adds w · Dice(LFR output, target crop) to each sample's patch loss and
    leaves everything else as it was (same batch, same clicks)."""
    from clicksam.train import losses

    patch_dice = []
    dice = losses.dice_loss

    def spy(logits, target, *args, **kwargs):
        value = dice(logits, target, *args, **kwargs)
        if logits.shape[-1] == model.sam_ref.config.patch_size:  # the patch, not the 1024 frame
            patch_dice.append(value.detach())
        return value

    monkeypatch.setattr(losses, "dice_loss", spy)
    plain = SamRefTraining(model, {"max_clicks": 2}).compute_loss(make_batch(model))
    assert not patch_dice  # SPEC §5's patch loss has no Dice term
    with_dice = SamRefTraining(model, {"max_clicks": 2, "patch_dice": 2.0}).compute_loss(make_batch(model))
    assert len(patch_dice) >= 1
    added = float(with_dice.metrics["patch_mask"] - plain.metrics["patch_mask"])
    assert added > 0
    assert added == pytest.approx(2.0 * float(torch.cat(patch_dice).mean()), rel=1e-4)
    assert float(with_dice.metrics["global_mask"]) == pytest.approx(float(plain.metrics["global_mask"]))
    with pytest.raises(ValueError, match="patch_dice"):
        SamRefTraining(model, {"patch_dice": -1.0})


def test_patch_refined_puts_the_patch_loss_on_the_ungated_prediction(monkeypatch):
    """``patch_refined=w`` adds w · (the patch's pixel loss) on the LFR's own prediction M̄, which
    differs from the gated output M wherever σ(Ê) < 1."""
    from clicksam.train import losses

    torch.manual_seed(0)
    model = build_sam("tiny", methods=["sam-ref"])
    cells = model.sam_ref.lfr.stride ** 2
    with torch.no_grad():
        model.sam_ref.lfr.head_out.bias[:cells] = 1.5  # Δ = 1.5 everywhere; the gate stays at σ(-4)
    weighted = []
    focal = losses.normalized_focal_loss

    def spy(logits, target, *args, **kwargs):
        value = focal(logits, target, *args, **kwargs)
        if kwargs.get("weight") is not None:  # the patch terms (the global term has no weight map)
            weighted.append((logits.detach(), value.detach()))
        return value

    monkeypatch.setattr(losses, "normalized_focal_loss", spy)
    batch = make_batch(model, seeds=(5,))
    plain = SamRefTraining(model, {"max_clicks": 1}).compute_loss(batch)
    assert len(weighted) == 1
    weighted.clear()
    batch.rng = SampleRandom((5,))
    both = SamRefTraining(model, {"max_clicks": 1, "patch_refined": 0.5}).compute_loss(batch)
    assert len(weighted) == 2
    (gated, _), (ungated, ungated_loss) = weighted
    assert torch.allclose(ungated - gated, torch.full_like(gated, 1.5 * (1 - torch.sigmoid(torch.tensor(-4.0)).item())),
                          atol=1e-4)
    added = float(both.metrics["patch_mask"] - plain.metrics["patch_mask"])
    assert added == pytest.approx(0.5 * float(ungated_loss.mean()), rel=1e-4)
    with pytest.raises(ValueError, match="patch_refined"):
        SamRefTraining(model, {"patch_refined": -0.1})
