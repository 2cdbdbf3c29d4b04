"""The decoder's inference shortcuts give the plain computation: cached positional-encoding
projections, the channels-last upscaling, and postprocessing of the cropped region only."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import clicksam
from clicksam.models.transformer import project_with_pe


@pytest.fixture(scope="module")
def decoder():
    torch.manual_seed(0)
    model = clicksam.build_sam("tiny")
    # random, non-trivial norms and biases so that a wrong layout cannot pass by symmetry
    with torch.no_grad():
        for p in model.mask_decoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.mask_decoder.eval()


def _generic_masks(decoder, src, size, hyper_in):
    b, _, c = src.shape
    upscaled = decoder.upscale(src.transpose(1, 2).reshape(b, c, *size))
    _, c8, h4, w4 = upscaled.shape
    return (hyper_in @ upscaled.reshape(b, c8, h4 * w4)).reshape(b, -1, h4, w4)


@pytest.mark.parametrize("batch,n", [(1, 4), (3, 2)])
def test_channels_last_upscaling_equals_the_layers(decoder, batch, n):
    assert decoder._fast_upscaling()
    torch.manual_seed(1)
    src = torch.randn(batch, 6 * 5, 256)
    hyper = torch.randn(batch, n, 32)
    fast = decoder.masks_from_features(src, (6, 5), hyper)
    assert fast.shape == (batch, n, 24, 20)
    assert torch.allclose(fast, _generic_masks(decoder, src, (6, 5), hyper), atol=1e-4)


def test_channels_last_upscaling_gradients_match(decoder):
    torch.manual_seed(2)
    src = torch.randn(2, 16, 256, requires_grad=True)
    hyper = torch.randn(2, 4, 32)
    (g_fast,) = torch.autograd.grad(decoder.masks_from_features(src, (4, 4), hyper).square().sum(), src)
    (g_ref,) = torch.autograd.grad(_generic_masks(decoder, src, (4, 4), hyper).square().sum(), src)
    assert torch.allclose(g_fast, g_ref, rtol=1e-4, atol=1e-4)


def test_other_upscaling_modules_take_the_generic_path(decoder):
    import copy

    other = copy.deepcopy(decoder)
    other.output_upscaling[0] = nn.ConvTranspose2d(256, 64, kernel_size=4, stride=2, padding=1)
    assert not other._fast_upscaling()
    src, hyper = torch.randn(1, 16, 256), torch.randn(1, 4, 32)
    assert torch.equal(other.masks_from_features(src, (4, 4), hyper), _generic_masks(other, src, (4, 4), hyper))


def test_pe_projection_is_cached_and_follows_new_weights():
    torch.manual_seed(3)
    proj = nn.Linear(8, 4)
    x, pe = torch.randn(2, 10, 8), torch.randn(1, 10, 8)
    with torch.no_grad():
        first = project_with_pe(proj, x, pe)
        assert torch.allclose(first, proj(x + pe), atol=1e-6)
        cached = proj.__dict__["_pe_projection"][2]
        assert torch.allclose(project_with_pe(proj, x[:1], pe), proj(x[:1] + pe), atol=1e-6)  # batch-1 form
        assert proj.__dict__["_pe_projection"][2] is cached  # reused, not recomputed
        proj.load_state_dict({"weight": torch.randn(4, 8), "bias": torch.randn(4)})
        again = project_with_pe(proj, x, pe)
    assert torch.allclose(again, proj(x + pe), atol=1e-6)  # the stale projection was not used
    assert not torch.allclose(again, first)


def test_pe_projection_keeps_gradients():
    torch.manual_seed(4)
    proj = nn.Linear(8, 4)
    x, pe = torch.randn(1, 10, 8, requires_grad=True), torch.randn(1, 10, 8)
    # trainable weights: the plain form, with a gradient for the weights
    project_with_pe(proj, x, pe).sum().backward()
    assert proj.weight.grad is not None
    # frozen weights (a plugin trained on a frozen SAM): the cached form, gradient reaches x
    proj.requires_grad_(False)
    x.grad = None
    project_with_pe(proj, x, pe).square().sum().backward()
    expected = 2 * (proj(x + pe)).detach() @ proj.weight
    assert torch.allclose(x.grad, expected, atol=1e-5)


@pytest.mark.parametrize("input_size,original_size", [
    ((683, 1024), (400, 600)), ((1024, 1024), (512, 512)), ((1024, 7), (1500, 10)),
    ((1, 1024), (1, 900)), ((1021, 998), (1021, 998)), ((4, 4), (4, 4)),
])
def test_postprocess_crops_before_upsampling_without_changing_values(tiny_model, input_size, original_size):
    torch.manual_seed(5)
    low = torch.randn(2, 3, 256, 256)
    full = F.interpolate(low, (1024, 1024), mode="bilinear", align_corners=False)
    full = full[..., : input_size[0], : input_size[1]]
    full = F.interpolate(full, original_size, mode="bilinear", align_corners=False)
    ours = tiny_model.postprocess_masks(low, input_size, original_size)
    assert ours.shape == full.shape
    assert torch.allclose(ours, full, atol=1e-5)
