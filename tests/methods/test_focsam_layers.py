"""The refiner's fast paths equal the plain formulas: single-query attention, the piecewise-linear
pixel MLP (values and gradients), the sigmoid form of tanh, P-DyReLU with its table cache."""
from __future__ import annotations

import torch
from torch import nn

from clicksam.methods.focsam.layers import PDyReLU, ZeroSlotAttention
from clicksam.methods.focsam.scalar_mlp import scalar_relu_mlp, scaled_tanh


def _plain_attention(attn, q, k, v):
    split = lambda t: t.view(t.shape[0], t.shape[1], attn.num_heads, -1).transpose(1, 2)  # noqa: E731
    qh, kh, vh = split(attn.q_proj(q)), split(attn.k_proj(k)), split(attn.v_proj(v))
    kh = torch.cat([kh, torch.zeros_like(kh[:, :, :1])], dim=2)
    vh = torch.cat([vh, torch.zeros_like(vh[:, :, :1])], dim=2)
    weights = torch.softmax(qh @ kh.transpose(-1, -2) / qh.shape[-1] ** 0.5, dim=-1)
    return attn.proj((weights @ vh).transpose(1, 2).reshape(q.shape[0], q.shape[1], -1))


def test_single_query_and_self_attention_match_the_plain_formula():
    torch.manual_seed(0)
    attn = ZeroSlotAttention(64, 4).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.3)
    q, kv = torch.randn(3, 1, 64, dtype=torch.float64), torch.randn(3, 20, 64, dtype=torch.float64)
    torch.testing.assert_close(attn(q, kv, kv), _plain_attention(attn, q, kv, kv))
    torch.testing.assert_close(attn(kv, kv, kv), _plain_attention(attn, kv, kv, kv))
    # a strongly negative query puts almost all weight on the zero slot: the output tends to proj.bias
    far = attn(q * 0 - 1e3 * attn.q_proj.bias.new_ones(1, 1, 64), kv * 0, kv * 0)
    assert far.shape == (3, 1, 64)


def test_scalar_mlp_values_and_gradients_match_the_dense_layers():
    torch.manual_seed(1)
    first, second = nn.Linear(1, 32).double(), nn.Linear(32, 12).double()
    with torch.no_grad():
        first.weight[:3] = 0.0  # flat units, one on and one off
        first.bias[0], first.bias[1] = 0.4, -0.4
    s = (torch.randn(50, 1, dtype=torch.float64) * 3).requires_grad_()
    grad_out = torch.randn(50, 12, dtype=torch.float64)
    dense = second(torch.relu(first(s)))
    params = [s, first.weight, first.bias, second.weight, second.bias]
    want = torch.autograd.grad((dense * grad_out).sum(), params)
    fast = scalar_relu_mlp(s, first, second, scale=3.0) / 3.0
    got = torch.autograd.grad((fast * grad_out).sum(), params)
    torch.testing.assert_close(fast, dense)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_scaled_tanh_is_tanh():
    x = torch.linspace(-12, 12, 2001)
    scale, bias = torch.full((2001,), 1.7), torch.full((2001,), -0.3)
    torch.testing.assert_close(scaled_tanh(x, scale, bias), torch.tanh(x) * 1.7 - 0.3, atol=1e-6, rtol=0)
    torch.testing.assert_close(scaled_tanh(2 * x, scale, bias, doubled=True), torch.tanh(x) * 1.7 - 0.3,
                               atol=1e-6, rtol=0)


def test_pdyrelu_matches_the_formula_and_its_cache_follows_the_weights():
    torch.manual_seed(2)
    relu = PDyReLU(16).eval()
    with torch.no_grad():
        for p in (relu.pixel_scale, relu.pixel_bias, relu.channel_scale, relu.channel_bias):
            p.normal_(0, 0.3)
    x, cls = torch.randn(3, 10, 16), torch.randn(3, 1, 16)

    def formula():
        pixel = relu.pixel_mlp(x @ cls.transpose(1, 2)) * relu.pixel_scale.exp() + relu.pixel_bias
        channel = relu.channel_mlp(x.mean(1, keepdim=True)) * relu.channel_scale.exp() + relu.channel_bias
        return torch.max(pixel[..., :16] * x + pixel[..., 16:], channel[..., :16] * x + channel[..., 16:])

    with torch.no_grad():
        torch.testing.assert_close(relu(x, cls), formula(), atol=1e-5, rtol=1e-5)
        assert relu._pixel_tables  # cached for inference
        relu.pixel_mlp[0].bias.add_(0.5)  # an in-place update must invalidate the cache
        torch.testing.assert_close(relu(x, cls), formula(), atol=1e-5, rtol=1e-5)
        relu.load_state_dict({k: v * 0.9 for k, v in relu.state_dict().items()})
        torch.testing.assert_close(relu(x, cls), formula(), atol=1e-5, rtol=1e-5)
    assert "_pixel_tables" not in "".join(relu.state_dict())


def test_pdyrelu_runs_with_inference_tensor_weights():
    """A module deep-copied under ``torch.inference_mode`` holds inference tensors, which have no
    version counter: P-DyReLU must still run (without its table cache) and give the same values."""
    import copy

    torch.manual_seed(3)
    relu = PDyReLU(16).eval()
    x, cls = torch.randn(2, 10, 16), torch.randn(2, 1, 16)
    with torch.no_grad():
        expected = relu(x, cls)
    with torch.inference_mode():
        copied = copy.deepcopy(relu)
        copied._pixel_tables.clear()  # the copy starts without the original's cached tables
        assert copied.pixel_mlp[0].weight.is_inference()
        torch.testing.assert_close(copied(x, cls), expected, atol=1e-6, rtol=0)
        copied.pixel_mlp[0].bias.add_(0.5)  # changed in place: the tables must follow
    with torch.no_grad():
        relu.pixel_mlp[0].bias.add_(0.5)
        changed = relu(x, cls)
    assert not torch.allclose(changed, expected)
    with torch.inference_mode():
        torch.testing.assert_close(copied(x, cls), changed, atol=1e-6, rtol=0)
    assert not copied._pixel_tables  # nothing cached for inference tensors
