"""Building blocks: the matrix-product form of the 2×2 transposed convolution, LayerNorm2d."""
from __future__ import annotations

import torch
from torch import nn

from clicksam.models.common import LayerNorm2d, upsample_conv_transpose


def test_upsample_conv_transpose_equals_the_layer():
    torch.manual_seed(0)
    for cin, cout, k in [(8, 4, 2), (6, 3, 4)]:
        layer = nn.ConvTranspose2d(cin, cout, kernel_size=k, stride=k)
        x = torch.randn(2, cin, 5, 7)
        assert torch.allclose(upsample_conv_transpose(x, layer), layer(x), atol=1e-6)
    overlapping = nn.ConvTranspose2d(4, 2, kernel_size=3, stride=2, padding=1)
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(upsample_conv_transpose(x, overlapping), overlapping(x))  # falls back


def test_layernorm2d_normalises_channels():
    x = torch.randn(2, 16, 3, 4) * 5 + 2
    ln = LayerNorm2d(16)
    y = ln(x)
    assert torch.allclose(y.mean(1), torch.zeros(2, 3, 4), atol=1e-5)
    assert torch.allclose(y.var(1, unbiased=False), torch.ones(2, 3, 4), atol=1e-3)
    ref = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (16,), eps=1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(y, ref, atol=1e-5)
