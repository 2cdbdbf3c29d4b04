"""SAM-REF units: config, prompt map, refiner frames, detail window, selector, crop/paste."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clicksam.methods.sam_ref import (DetailRefiner, SamRef, SamRefConfig, click_disks,
                                      detail_window, largest_changed_region, prompt_map,
                                      use_previous_base)
from clicksam.methods.sam_ref.window import crop_embedding, crop_resize, error_area, paste


def set_disk_weights(net: DetailRefiner, gain: float = 10.0) -> DetailRefiner:
    """Make Δ = ``gain`` on the positive-disk pixels and 0 elsewhere, with the gate ≈ 1.

    Each positive-disk sub-pixel goes through its own feature channel from the prompt stem to
    the head, so a test fails if the space-to-depth and the pixel shuffle disagree on which
    full-resolution pixel a channel means (a transposed or shifted frame). Needs
    ``width >= stride**2``.
    """
    cells = net.stride * net.stride
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        eye = torch.eye(cells)
        net.prompt_stem.weight[:cells, :cells, 0, 0] = eye  # channel k of the positive disks
        net.head[0].depthwise.weight[:cells, 0, 1, 1] = 1.0
        net.head[0].pointwise.weight[:cells, :cells, 0, 0] = eye
        gelu_one = torch.nn.functional.gelu(torch.tensor(1.0)).item()
        net.head_out.weight[:cells, :cells, 0, 0] = eye * (gain / gelu_one)
        net.head_out.bias[cells:] = 30.0  # σ(Ê) ≈ 1: trust the refiner everywhere
    return net


def make_disk_refiner(gain: float = 10.0) -> DetailRefiner:
    return set_disk_weights(DetailRefiner(width=16, num_blocks=2, stride=4, embed_dim=8), gain)


# -- config -------------------------------------------------------------------------------
def test_config_round_trip_and_validation():
    config = SamRefConfig(width=48, num_blocks=2, window_min_size=96)
    assert SamRefConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="width"):
        SamRefConfig(width=0)
    with pytest.raises(ValueError, match="stride"):
        SamRefConfig(stride=3)
    with pytest.raises(ValueError, match="window_expansion"):
        SamRefConfig(window_expansion=0.5)
    with pytest.raises(ValueError, match="unknown SAM-REF config keys"):
        SamRefConfig.from_dict({"width": 32, "colour": "red"})


# -- prompt map ---------------------------------------------------------------------------
def test_click_disks_exact_pixels():
    points = torch.tensor([[[10.0, 20.0], [40.0, 5.0], [3.0, 3.0]]])
    labels = torch.tensor([[1, 0, -1]])  # the padding point draws nothing
    disks = click_disks(points, labels, (32, 48), radius=5)
    assert disks.shape == (1, 2, 32, 48)
    rows, cols = np.mgrid[0:32, 0:48]
    expected_pos = (cols - 10) ** 2 + (rows - 20) ** 2 <= 25
    expected_neg = (cols - 40) ** 2 + (rows - 5) ** 2 <= 25
    np.testing.assert_array_equal(disks[0, 0].numpy() > 0, expected_pos)
    np.testing.assert_array_equal(disks[0, 1].numpy() > 0, expected_neg)
    assert int(expected_pos.sum()) == 81 and disks[0, 0].sum() == 81


def test_prompt_map_channels_and_errors():
    logits = torch.randn(2, 1, 64, 64)
    points = torch.tensor([[[5.0, 6.0]], [[60.0, 62.0]]])
    labels = torch.tensor([[0], [1]])
    d = prompt_map(points, labels, logits, radius=2)
    assert d.shape == (2, 3, 64, 64)
    assert torch.equal(d[:, 2:], logits)
    assert d[0, 1, 6, 5] == 1 and d[0, 0].sum() == 0
    assert d[1, 0, 62, 60] == 1 and d[1, 0, 63, 63] == 0 and d[1, 1].sum() == 0
    assert torch.equal(prompt_map(None, None, logits)[:, :2], torch.zeros(2, 2, 64, 64))
    with pytest.raises(ValueError, match="labels"):
        prompt_map(points, None, logits)
    with pytest.raises(ValueError, match="B×1×S×S"):
        prompt_map(points, labels, logits[:, 0])


# -- refiner ------------------------------------------------------------------------------
def test_untrained_refiner_is_the_identity_with_shapes():
    net = DetailRefiner(width=8, num_blocks=2, embed_dim=16)
    image, prompt = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    base = torch.randn(2, 1, 64, 64)
    out = net(image, prompt, torch.randn(2, 16, 8, 8), base)
    for t in (out.logits, out.refined_logits, out.error_logits):
        assert t.shape == (2, 1, 64, 64)
    assert torch.equal(out.logits, base)
    assert bool((out.error_logits < 0).all())


def test_refiner_frame_known_prompt_map_in_right_pixels_out():
    net = make_disk_refiner()
    points, labels = torch.tensor([[[13.0, 41.0]]]), torch.tensor([[1]])
    base = torch.zeros(1, 1, 64, 64)
    d = prompt_map(points, labels, base, radius=3)
    out = net(torch.zeros(1, 3, 64, 64), d, torch.zeros(1, 8, 16, 16), base)
    rows, cols = np.mgrid[0:64, 0:64]
    disk = (cols - 13) ** 2 + (rows - 41) ** 2 <= 9
    np.testing.assert_allclose(out.logits[0, 0].detach().numpy(), 10.0 * disk, atol=1e-4)


def test_refiner_rejects_bad_inputs():
    net = DetailRefiner(width=8, num_blocks=1, embed_dim=16)
    with pytest.raises(ValueError, match="multiples of the refiner stride"):
        net.encode_context(torch.zeros(1, 3, 30, 32), torch.zeros(1, 16, 8, 8))
    with pytest.raises(ValueError, match="embedding must be"):
        net.encode_context(torch.zeros(1, 3, 32, 32), torch.zeros(1, 15, 8, 8))
    ctx = net.encode_context(torch.zeros(1, 3, 32, 32), torch.zeros(1, 16, 8, 8))
    with pytest.raises(ValueError, match="context grid"):
        net.refine(ctx, torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="prompt must be"):
        net.refine(ctx, torch.zeros(1, 2, 32, 32), torch.zeros(1, 1, 32, 32))


# -- detail window ------------------------------------------------------------------------
def _mask(size=(1024, 1024), *boxes):
    m = np.zeros(size, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def test_largest_changed_region_picks_the_biggest():
    new = _mask((200, 300), (10, 10, 30, 20), (100, 50, 180, 120))
    prev = _mask((200, 300), (100, 50, 120, 120))  # part of the big box was already there
    assert largest_changed_region(new, prev) == (120, 50, 180, 120)
    assert largest_changed_region(new, new) is None


def test_window_expansion_and_minimum_size():
    prev = np.zeros((1024, 1024), dtype=bool)
    small = _mask((1024, 1024), (100, 100, 140, 120))  # 40×20 -> 56×28 -> at least 64
    assert detail_window(small, prev, None, (1024, 1024)) == (88, 78, 152, 142)
    big = _mask((1024, 1024), (200, 300, 400, 400))  # 200×100 -> 280×140 about (300, 350)
    assert detail_window(big, prev, None, (1024, 1024)) == (160, 280, 440, 420)
    # no previous mask (first click): the region is the new mask itself
    assert detail_window(big, None, None, (1024, 1024)) == (160, 280, 440, 420)


def test_window_fallback_around_last_click():
    obj = _mask((1024, 1024), (300, 200, 800, 500))  # object 500×300: side 0.4·500 = 200
    window = detail_window(obj, obj, (500.0, 400.0), (1024, 1024))
    # 200 × 1.4 = 280 about the click's pixel centre (500.5, 400.5)
    assert window == (360, 260, 641, 541)
    empty = np.zeros((1024, 1024), dtype=bool)
    assert detail_window(empty, empty, (500.0, 400.0), (1024, 1024)) == (468, 368, 533, 433)
    # no click either: the image centre
    assert detail_window(empty, empty, None, (600, 800)) == (368, 268, 432, 332)


def test_window_clipped_to_the_image_not_the_padding():
    corner = _mask((1024, 1024), (0, 0, 10, 10))
    assert detail_window(corner, None, None, (1024, 1024)) == (0, 0, 37, 37)
    # image 600×800 inside the frame: the window stops at the image border, and changes on
    # the padding are ignored
    near_edge = _mask((1024, 1024), (770, 560, 800, 600), (900, 900, 1000, 1000))
    assert detail_window(near_edge, None, None, (600, 800)) == (753, 548, 800, 600)
    # a click on the padding still gives a window inside the image
    empty = np.zeros((1024, 1024), dtype=bool)
    x0, y0, x1, y1 = detail_window(empty, empty, (1000.0, 1000.0), (600, 800))
    assert (x0, y0, x1, y1) == (768, 568, 800, 600)
    with pytest.raises(ValueError, match="input_size"):
        detail_window(empty, empty, None, (2000, 800))


# -- selector -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "area, previous, expected",
    [(120, 100, True), (110, 100, False), (105, 100, False), (50, 100, False),
     (5, 0, True), (0, 0, False)],
)
def test_selector_ratio(area, previous, expected):
    got = use_previous_base(torch.tensor([area]), torch.tensor([previous]), 1.1)
    assert bool(got[0]) is expected
    assert not bool(use_previous_base(torch.tensor([area]), None, 1.1)[0])


def test_error_area_counts_inside_the_image():
    err = torch.full((1, 1, 16, 16), -1.0)
    err[..., :4, :4] = 2.0
    err[..., 12:, 12:] = 2.0  # on the padding
    assert int(error_area(err, (10, 10))[0]) == 16


@pytest.mark.parametrize("grown", [True, False])
def test_samref_pastes_on_the_base_the_selector_chooses(grown):
    config = SamRefConfig(image_size=64, embed_dim=8, width=8, patch_width=8, num_blocks=1,
                          patch_size=32, window_min_size=16)
    model = SamRef(config)
    with torch.no_grad():
        model.gfr.head_out.bias[16:] = 5.0  # the GFR flags every pixel: area = 48·64
    sam = torch.full((1, 1, 16, 16), -5.0)
    sam[..., 4:8, 4:8] = 5.0
    previous = torch.full((1, 1, 64, 64), -3.0)
    prev_area = torch.tensor([100 if grown else 48 * 64])
    out = model(torch.randn(1, 3, 64, 64), torch.randn(1, 8, 4, 4), sam,
                torch.tensor([[[20.0, 20.0]]]), torch.tensor([[1]]), (48, 64),
                previous_logits=previous, previous_error_area=prev_area)
    assert int(out.error_area[0]) == 48 * 64
    assert bool(out.used_previous[0]) is grown
    x0, y0, x1, y1 = out.windows[0]
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    expected_base = previous if grown else out.global_logits
    assert torch.equal(out.logits[0, 0][outside], expected_base[0, 0][outside])
    # the untrained LFR pastes no change inside the window either
    assert torch.equal(out.logits, expected_base)


@pytest.mark.parametrize("grown", [True, False])
def test_lfr_reads_the_base_it_corrects(grown, monkeypatch):
    """The LFR's prompt map holds the cropped click disks and the cropped *base* (the mask its
    correction is added to: the GFR's output, or the previous final mask when the selector
    picks it), not SAM's logits, which the GFR already read."""
    config = SamRefConfig(image_size=64, embed_dim=8, width=8, patch_width=8, num_blocks=1,
                          patch_size=32, window_min_size=16)
    model = SamRef(config)
    with torch.no_grad():
        model.gfr.head_out.bias[16:] = 5.0  # the GFR flags every pixel: area = 64·64
        model.gfr.head_out.bias[:16] = 2.0  # and moves every logit by +2: GFR output != SAM
    seen = {}
    refine = model.lfr.refine

    def spy(context, prompt, base_logits):
        seen["prompt"], seen["base"] = prompt, base_logits
        return refine(context, prompt, base_logits)

    monkeypatch.setattr(model.lfr, "refine", spy)
    sam = torch.full((1, 1, 16, 16), -5.0)
    sam[..., 4:8, 4:8] = 5.0
    previous = torch.full((1, 1, 64, 64), -3.0)
    previous[..., 10:30, 12:34] = 4.0
    points, labels = torch.tensor([[[20.0, 20.0]]]), torch.tensor([[1]])
    out = model(torch.randn(1, 3, 64, 64), torch.randn(1, 8, 4, 4), sam, points, labels, (64, 64),
                previous_logits=previous, previous_error_area=torch.tensor([100 if grown else 64 * 64]))
    assert bool(out.used_previous[0]) is grown
    base = previous if grown else out.global_logits
    window = out.windows
    assert torch.equal(seen["base"], crop_resize(base, window, 32))
    assert torch.equal(seen["prompt"][:, 2:], seen["base"])  # the mask channel is the base ...
    assert not torch.allclose(seen["prompt"][:, 2:], crop_resize(out.sam_logits, window, 32))  # ... not SAM
    assert torch.equal(seen["prompt"][:, :2], crop_resize(out.prompt[:, :2], window, 32))  # the disks


# -- crop / paste -------------------------------------------------------------------------
def test_crop_resize_paste_and_embedding_crop():
    x = torch.randn(2, 3, 64, 64)
    windows = [(0, 0, 64, 64), (10, 20, 42, 52)]
    crops = crop_resize(x, windows, 32)
    assert crops.shape == (2, 3, 32, 32)
    assert torch.allclose(crops[1], x[1, :, 20:52, 10:42])  # same size: an exact copy
    pasted = paste(torch.zeros(2, 3, 64, 64), crops, windows)
    assert torch.allclose(pasted[1, :, 20:52, 10:42], x[1, :, 20:52, 10:42])
    assert pasted[1, :, :20].abs().sum() == 0
    added = paste(torch.ones(2, 3, 64, 64), torch.ones(2, 3, 32, 32), windows, add=True)
    assert added[1, 0, 30, 30] == 2 and added[1, 0, 0, 0] == 1
    emb = torch.randn(2, 8, 16, 16)
    full = crop_embedding(emb, [(0, 0, 64, 64), (0, 0, 64, 64)], 16, image_size=64)
    assert torch.allclose(full, emb, atol=1e-5)
    quarter = crop_embedding(emb, [(0, 0, 32, 32), (32, 32, 64, 64)], 8, image_size=64)
    assert torch.allclose(quarter[0], emb[0, :, :8, :8], atol=1e-5)
    assert torch.allclose(quarter[1], emb[1, :, 8:, 8:], atol=1e-5)


def test_gradients_reach_every_refiner_parameter_and_not_the_inputs():
    config = SamRefConfig(image_size=64, embed_dim=8, width=8, patch_width=8, num_blocks=2,
                          patch_size=32, window_min_size=16)
    model = SamRef(config)
    with torch.no_grad():  # leave the zero-initialised start so every layer gets a gradient
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    image, emb = torch.randn(1, 3, 64, 64), torch.randn(1, 8, 4, 4)
    sam = torch.randn(1, 1, 16, 16)
    out = model(image, emb, sam, torch.tensor([[[20.0, 20.0]]]), torch.tensor([[1]]), (64, 64))
    (out.logits.sum() + out.global_error.sum() + out.patch_error.sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_samref_checks_its_inputs():
    config = SamRefConfig(image_size=64, embed_dim=8, width=8, patch_width=8, num_blocks=1,
                          patch_size=32, window_min_size=16)
    model = SamRef(config)
    image, emb, sam = torch.zeros(1, 3, 64, 64), torch.zeros(1, 8, 4, 4), torch.zeros(1, 1, 16, 16)
    pts, lbl = torch.tensor([[[20.0, 20.0]]]), torch.tensor([[1]])
    with pytest.raises(ValueError, match="inside the 64×48"):
        model(image, emb, sam, pts, lbl, (48, 64), windows=[(0, 0, 64, 60)])
    out = model(image, emb, sam, pts, lbl, (48, 64), windows=[(8, 8, 40, 40)])
    assert out.windows == [(8, 8, 40, 40)]
    with pytest.raises(ValueError, match="input_size"):
        model(image, emb, sam, pts, lbl, (80, 64))
    with pytest.raises(ValueError, match="previous_logits"):
        model(image, emb, sam, pts, lbl, (48, 64), previous_logits=torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="padded frame"):
        model(torch.zeros(1, 3, 32, 32), emb, sam, pts, lbl, (32, 32))
