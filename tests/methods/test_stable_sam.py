"""Stable-SAM's plugin: identity at start, forced routing, DSP sampling, sizes, shapes, gradients."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from clicksam.build import count_parameters, sam_from_config
from clicksam.methods.stable_sam import StableSamPlugin, attach, decoder_hooks, sample_tokens_at_offsets
from clicksam.models.hooks import DecoderHooks
from clicksam.registry import get_config

EMBEDDING = (1, 256, 64, 64)


def randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> None:
    """Random plugin weights (LayerNorm gains around 1) so that every part is active."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = scale * torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + noise if "norm" in name and name.endswith("weight") else noise)


def make_model(frame: int = 1024):
    """The seeded tiny SAM with an untrained plugin; ``frame`` 256 gives a 16×16 grid (fast tests)."""
    torch.manual_seed(0)
    model = sam_from_config(dataclasses.replace(get_config("tiny"), image_size=frame))
    attach(model)
    return model.eval()


def make_prompts(frame: int = 1024, batch: int = 3):
    """A shared embedding and a batch of mixed prompts (points, boxes, previous logits)."""
    gen = torch.Generator().manual_seed(1)
    s = frame / 1024
    embedding = torch.randn(1, 256, frame // 16, frame // 16, generator=gen)
    coords = torch.tensor([[[300.0, 420.0], [610.0, 200.0], [700.0, 700.0]]]).repeat(3, 1, 1)
    coords = (coords + 40 * torch.randn(coords.shape, generator=gen)) * s
    labels = torch.tensor([[1, 0, 1], [1, 1, 1], [1, 0, 0]])
    boxes = torch.tensor([[100.0, 150.0, 600.0, 700.0], [0.0, 0.0, 1023.0, 1023.0], [400.0, 400.0, 420.0, 430.0]]) * s
    mask_input = 3 * torch.randn(3, 1, frame // 4, frame // 4, generator=gen)
    return embedding, (coords[:batch], labels[:batch]), boxes[:batch], mask_input[:batch]


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def prompts():
    return make_prompts()


@pytest.fixture(scope="module")
def small_prompts():
    return make_prompts(256)


def hooks_of(model, plugged: bool = True) -> DecoderHooks:
    return decoder_hooks(model.stable_sam) if plugged else DecoderHooks()


def decode(model, prompts, plugged: bool, multimask: bool = True):
    embedding, points, boxes, mask_input = prompts
    with torch.no_grad():
        return model.decode(embedding, points=points, boxes=boxes, mask_input=mask_input,
                            multimask_output=multimask, hooks=hooks_of(model, plugged))


def test_untrained_plugin_reproduces_sam_exactly(model, prompts):
    plain, plugged = decode(model, prompts, False), decode(model, prompts, True)
    for a, b in [(plain.all_low_res_logits, plugged.all_low_res_logits),
                 (plain.all_iou_predictions, plugged.all_iou_predictions), (plain.mask_tokens, plugged.mask_tokens)]:
        assert (a - b).abs().max() < 1e-6
        assert torch.equal(a, b)  # bit for bit: identity proj + zero offsets give x itself
    alpha = model.stable_sam.last_alpha
    assert alpha.shape == (3, 2)
    torch.testing.assert_close(alpha, torch.tensor([[0.01, 0.99]]).expand(3, 2))


def test_plugin_is_in_the_path(small_prompts):
    """The identity above is not vacuous: a trained-looking plugin changes SAM's output."""
    prompts = small_prompts
    model = make_model(256)
    randomize(model.stable_sam, seed=3)
    plain, plugged = decode(model, prompts, False), decode(model, prompts, True)
    assert (plain.all_low_res_logits - plugged.all_low_res_logits).abs().max() > 1e-3
    with model.stable_sam.forced_alpha(1.0, 0.0):
        deformed_only = decode(model, prompts, True)
    assert (plugged.all_low_res_logits - deformed_only.all_low_res_logits).abs().max() > 1e-4


@pytest.mark.parametrize("frame", [256, 1024])
def test_forced_alpha_0_1_reproduces_sam_for_any_weights(frame):
    prompts = make_prompts(frame, batch=2)
    model = make_model(frame)
    randomize(model.stable_sam, seed=frame, scale=0.5)
    plain = decode(model, prompts, False, multimask=False)
    with model.stable_sam.forced_alpha(0.0, 1.0):
        forced = decode(model, prompts, True, multimask=False)
    assert model.stable_sam.alpha_override is None  # restored after the block
    assert (plain.all_low_res_logits - forced.all_low_res_logits).abs().max() < 1e-6
    assert torch.equal(plain.all_iou_predictions, forced.all_iou_predictions)


def deform_grid(offsets: torch.Tensor) -> torch.Tensor:
    """Reference: the normalised grid_sample grid (align_corners=False) of the cell centres
    shifted by ``offsets`` (B×2×H×W in cells, (Δx, Δy)), B×H×W×2."""
    _, _, h, w = offsets.shape
    cols = torch.arange(w, dtype=offsets.dtype)
    rows = torch.arange(h, dtype=offsets.dtype)
    gx = (2 * (cols[None, None, :] + offsets[:, 0]) + 1) / w - 1
    gy = (2 * (rows[None, :, None] + offsets[:, 1]) + 1) / h - 1
    return torch.stack([gx, gy], dim=-1)


def sample_at_offsets(features: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Reference: DSP's resampling as torch's grid_sample (B×C×H×W features, zeros outside)."""
    return torch.nn.functional.grid_sample(features, deform_grid(offsets), mode="bilinear",
                                           padding_mode="zeros", align_corners=False)


def sample_nchw(features: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """The DSP's own sampler (channels-last) called with B×C×H×W features and B×2×H×W offsets."""
    b, c, h, w = features.shape
    out = sample_tokens_at_offsets(features.flatten(2).transpose(1, 2), offsets.permute(0, 2, 3, 1), h)
    return out.transpose(1, 2).reshape(b, c, h, w)


def test_zero_offsets_sample_exactly_and_shifts_follow_the_formula():
    gen = torch.Generator().manual_seed(0)
    for side in (64, 16):
        x = torch.randn(2, 8, side, side, generator=gen)
        zero = torch.zeros(2, 2, side, side)
        assert torch.equal(sample_nchw(x, zero), x)
        # Δx = +1 reads the right neighbour, the last column falls outside and reads 0
        shift = zero.clone()
        shift[:, 0] = 1.0
        out = sample_nchw(x, shift)
        torch.testing.assert_close(out[..., :-1], x[..., 1:], atol=1e-6, rtol=0)
        assert out[..., -1].abs().max() == 0
        # Δy = -0.5 is the mean of the cell and the one above (half of it outside at row 0)
        half = zero.clone()
        half[:, 1] = -0.5
        out = sample_nchw(x, half)
        torch.testing.assert_close(out[..., 1:, :], (x[..., 1:, :] + x[..., :-1, :]) / 2, atol=1e-6, rtol=0)
        torch.testing.assert_close(out[..., 0, :], x[..., 0, :] / 2, atol=1e-6, rtol=0)
    grid = deform_grid(torch.zeros(1, 2, 4, 4))
    torch.testing.assert_close(grid[0, 0, :, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))


def test_channels_last_sampler_equals_grid_sample_values_and_gradients():
    """The embedding_bag sampler the DSP runs is grid_sample on the transposed features."""
    gen = torch.Generator().manual_seed(3)
    side = 16
    x = torch.randn(2, 5, side, side, generator=gen, requires_grad=True)
    # offsets up to 3 cells, so some taps fall outside the grid, plus exact integers and zeros
    offsets = (torch.rand(2, 2, side, side, generator=gen) - 0.5) * 6
    offsets[0, :, :4] = torch.randint(-2, 3, (2, 4, side), generator=gen).float()
    offsets[1, :, -3:] = 0.0
    offsets.requires_grad_(True)
    reference = sample_at_offsets(x, offsets)
    tokens = x.flatten(2).transpose(1, 2)
    ours = sample_tokens_at_offsets(tokens, offsets.permute(0, 2, 3, 1), side)
    torch.testing.assert_close(ours, reference.flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)
    weight = torch.randn(reference.shape, generator=gen)
    gx_ref, go_ref = torch.autograd.grad((reference * weight).sum(), (x, offsets))
    gx, go = torch.autograd.grad((ours * weight.flatten(2).transpose(1, 2)).sum(), (x, offsets))
    torch.testing.assert_close(gx, gx_ref, atol=1e-4, rtol=1e-4)
    # grid_sample's coordinate gradient is scaled by its normalisation; in cells both are equal
    torch.testing.assert_close(go, go_ref, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="B×H×W×2"):
        sample_tokens_at_offsets(tokens, offsets, side)


def test_routing_formula_matches_the_paper():
    """keys/values = α1·x*(p+Δp) + α2·x with α = softmax(DRP(single-mask token))."""
    torch.manual_seed(0)
    plugin = StableSamPlugin()
    randomize(plugin, seed=5)
    gen = torch.Generator().manual_seed(6)
    queries, keys = torch.randn(3, 9, 256, generator=gen), torch.randn(3, 256, 256, generator=gen)
    routed = plugin.route(queries, keys)
    x = keys.transpose(1, 2).reshape(3, 256, 16, 16)
    projected = plugin.dsp.proj(x)
    expected_deformed = sample_at_offsets(projected, routed.offsets)
    torch.testing.assert_close(routed.deformed, expected_deformed)
    alpha = plugin.drp(queries[:, 1])
    torch.testing.assert_close(routed.alpha, alpha)
    torch.testing.assert_close(alpha.sum(1), torch.ones(3))
    expected = alpha[:, 0, None, None] * expected_deformed.flatten(2).transpose(1, 2) + alpha[:, 1, None, None] * keys
    torch.testing.assert_close(routed.features, expected, atol=1e-5, rtol=1e-5)
    assert routed.offsets.abs().max() > 0 and not torch.allclose(alpha[0], alpha[1])


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_parameter_count_is_about_0_08m_for_every_size(name):
    with torch.device("meta"):
        model = sam_from_config(get_config(name))
        plugin = attach(model)
    n = count_parameters(plugin)
    assert 75_000 <= n <= 90_000, n
    assert n == 81_828  # 65,792 proj + 7,684 offset net + 8,352 router
    assert next(plugin.parameters()).device.type == "meta"


def test_gradients_reach_only_the_plugin(small_prompts):
    prompts = small_prompts
    model = make_model(256)
    randomize(model.stable_sam, seed=7)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("stable_sam."))
    embedding, points, boxes, mask_input = prompts
    out = model.decode(embedding, points=points, boxes=boxes, mask_input=mask_input, multimask_output=False,
                       hooks=hooks_of(model))
    out.low_res_logits.square().mean().backward()
    for name, p in model.named_parameters():
        if name.startswith("stable_sam."):
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name
        else:
            assert p.grad is None, name


def test_untrained_plugin_trains_from_the_first_step(small_prompts):
    """At the identity, α gets no gradient (deformed == original) but DSP does, through α1 > 0."""
    model = make_model(256)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("stable_sam."))
    embedding, points, boxes, mask_input = small_prompts
    out = model.decode(embedding, points=points, boxes=boxes, multimask_output=False, hooks=hooks_of(model))
    out.low_res_logits.square().mean().backward()
    plugin = model.stable_sam
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("stable_sam."))
    assert plugin.dsp.offset_out.weight.grad.abs().max() > 0
    assert plugin.dsp.proj.weight.grad.abs().max() > 0
    assert plugin.drp.fc2.bias.grad.abs().max() == 0


@pytest.mark.parametrize("multimask", [True, False])
def test_shapes_for_batches_of_prompts(model, prompts, multimask):
    out = decode(model, prompts, True, multimask)
    c = 3 if multimask else 1
    assert out.low_res_logits.shape == (3, c, 256, 256) and out.iou_predictions.shape == (3, c)
    assert out.mask_tokens.shape == (3, 4, 256)
    routed = model.stable_sam.route(torch.randn(3, 10, 256), torch.randn(3, 4096, 256))
    assert routed.features.shape == (3, 4096, 256) and routed.alpha.shape == (3, 2)
    assert routed.offsets.shape == (3, 2, 64, 64) and routed.deformed.shape == (3, 256, 64, 64)
    # one embedding per prompt works too
    embedding, points, boxes, mask_input = prompts
    with torch.no_grad():
        per_prompt = model.decode(embedding.expand(3, -1, -1, -1), points=points, boxes=boxes, mask_input=mask_input,
                                  multimask_output=multimask, hooks=hooks_of(model))
    torch.testing.assert_close(per_prompt.low_res_logits, out.low_res_logits)


def test_bad_inputs_raise_readable_errors(model):
    plugin = model.stable_sam
    with pytest.raises(ValueError, match="square grid"):
        plugin(torch.randn(1, 6, 256), torch.randn(1, 4000, 256))
    with pytest.raises(ValueError, match="width 256"):
        plugin(torch.randn(1, 6, 128), torch.randn(1, 4096, 128))
    with pytest.raises(ValueError, match="same B"):
        plugin(torch.randn(2, 6, 256), torch.randn(1, 4096, 256))
    with pytest.raises(ValueError, match="initial_alpha1"):
        StableSamPlugin(initial_alpha1=0.0)
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    with pytest.raises(ValueError, match="block\\(s\\) \\[2\\], but the decoder has 2"):
        model.decode(torch.zeros(EMBEDDING), boxes=box, hooks=DecoderHooks().with_kv_plugin(2, plugin))
    with pytest.raises(ValueError, match="already has a key/value plugin"):
        decoder_hooks(plugin, decoder_hooks(plugin))


def test_reset_parameters_restores_the_identity():
    plugin = StableSamPlugin()
    randomize(plugin, seed=9)
    keys, queries = torch.randn(1, 1024, 256), torch.randn(1, 6, 256)
    assert not torch.equal(plugin(queries, keys), keys)
    plugin.reset_parameters()
    assert torch.equal(plugin(queries, keys), keys)


def test_offsets_stay_float32_under_bf16_autocast():
    plugin = StableSamPlugin()
    randomize(plugin, seed=13)
    gen = torch.Generator().manual_seed(14)
    queries, keys = torch.randn(2, 6, 256, generator=gen), torch.randn(2, 256, 256, generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        routed = plugin.route(queries, keys)
    assert routed.offsets.dtype == torch.float32 and routed.deformed.dtype == torch.float32
    assert routed.features.shape == keys.shape and torch.isfinite(routed.features).all()
