"""The grid_sample DCNv2 against a direct per-pixel formula (mmcv/torchvision semantics)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clicksam.methods.focsam.dcn import DeformLayer, ModulatedDeformConv2d, modulated_deform_conv2d


def _bilinear_zero_outside(img: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """C-vector at (y, x) of a C×H×W image; the point reads zero unless -1 < y < H and -1 < x < W,
    and each of the four corners outside the image reads zero (mmcv's dmcn_im2col_bilinear)."""
    channels, height, width = img.shape
    if not (-1 < y < height and -1 < x < width):
        return torch.zeros(channels, dtype=img.dtype)
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    total = torch.zeros(channels, dtype=img.dtype)
    for yy, xx, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                       (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        if 0 <= yy < height and 0 <= xx < width:
            total += wt * img[:, yy, xx]
    return total


def direct_dcn(x, offset, mask, weight, stride=1, padding=1, dilation=1):
    """Output pixel by output pixel: sum over kernel points of W_k · mask · x(p + p_k + Δp_k)."""
    batch, _, _, _ = x.shape
    out_channels, _, kh, kw = weight.shape
    _, _, height_out, width_out = offset.shape
    out = torch.zeros(batch, out_channels, height_out, width_out, dtype=x.dtype)
    for b in range(batch):
        for h in range(height_out):
            for w in range(width_out):
                for i in range(kh):
                    for j in range(kw):
                        k = i * kw + j
                        y = h * stride - padding + i * dilation + float(offset[b, 2 * k, h, w])
                        xx = w * stride - padding + j * dilation + float(offset[b, 2 * k + 1, h, w])
                        value = _bilinear_zero_outside(x[b], y, xx) * mask[b, k, h, w]
                        out[b, :, h, w] += weight[:, :, i, j] @ value
    return out


@pytest.mark.parametrize(
    "height,width,stride,padding,dilation,spread",
    [(5, 6, 1, 1, 1, 2.5), (7, 4, 1, 2, 2, 1.5), (6, 6, 2, 1, 1, 3.0), (1, 5, 1, 1, 1, 1.2), (4, 1, 1, 1, 1, 1.2)],
)
def test_matches_direct_formula(height, width, stride, padding, dilation, spread):
    gen = torch.Generator().manual_seed(height * 31 + width)
    x = torch.randn(2, 3, height, width, generator=gen, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64)
    height_out = (height + 2 * padding - dilation * 2 - 1) // stride + 1
    width_out = (width + 2 * padding - dilation * 2 - 1) // stride + 1
    # offsets large enough to leave the image, plus exact integers and the -1 border
    offset = (torch.rand(2, 18, height_out, width_out, generator=gen, dtype=torch.float64) * 2 - 1) * spread
    offset[0, :4] = torch.round(offset[0, :4])
    offset[1, 0, 0, 0] = -1.0 - (0 * stride - padding)  # y == -1 exactly for kernel point 0 → zero
    mask = torch.rand(2, 9, height_out, width_out, generator=gen, dtype=torch.float64)
    got = modulated_deform_conv2d(x, offset, mask, weight, stride=stride, padding=padding, dilation=dilation)
    want = direct_dcn(x, offset, mask, weight, stride=stride, padding=padding, dilation=dilation)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-9)


def test_zero_offsets_and_unit_mask_is_plain_convolution():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, 9, 7, generator=gen)
    weight = torch.randn(5, 8, 3, 3, generator=gen)
    bias = torch.randn(5, generator=gen)
    out = modulated_deform_conv2d(x, torch.zeros(3, 18, 9, 7), torch.ones(3, 9, 9, 7), weight, bias)
    torch.testing.assert_close(out, F.conv2d(x, weight, bias, padding=1), atol=1e-5, rtol=1e-5)


def test_integer_offset_shifts_the_kernel_point():
    # dy = +1 on every point reads the row below: same as convolving the image shifted up by one
    # (except in row 0, where the shifted image's zero padding row is a real row for the DCN)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 6, 6, generator=gen)
    weight = torch.randn(3, 2, 3, 3, generator=gen)
    offset = torch.zeros(1, 18, 6, 6)
    offset[:, 0::2] = 1.0  # channel 2k is dy
    out = modulated_deform_conv2d(x, offset, torch.ones(1, 9, 6, 6), weight)
    shifted = F.pad(x[:, :, 1:], (0, 0, 0, 1))
    want = F.conv2d(shifted, weight, padding=1)
    torch.testing.assert_close(out[:, :, 1:], want[:, :, 1:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[:, :, 0], want[:, :, 0])


def test_gradients_match_finite_differences():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    # keep sample points away from integer coordinates, where bilinear is not differentiable
    offset = (0.25 + 0.5 * torch.rand(1, 18, 3, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    mask = torch.rand(1, 9, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(1, 2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c, d: modulated_deform_conv2d(a, b, c, d), (x, offset, mask, weight))


def test_deform_layer_uses_the_official_channel_layout():
    """dcn_offset channels 0-17 are the interleaved (dy, dx) offsets, 18-26 the mask logits."""
    torch.manual_seed(3)
    layer = DeformLayer(4, 5)
    x = torch.randn(2, 4, 6, 7)
    with torch.no_grad():
        layer.dcn_offset.weight.mul_(0.3)
    with torch.no_grad():
        raw = layer.dcn_offset(x)
    want = direct_dcn(x.double(), raw[:, :18].double(), raw[:, 18:].sigmoid().double(), layer.dcn.weight.double())
    with torch.no_grad():
        got = layer(x).double()
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert tuple(layer.state_dict()) == ("dcn_offset.weight", "dcn_offset.bias", "dcn.weight")


def test_bad_shapes_raise_clear_errors():
    x, weight = torch.zeros(1, 3, 5, 5), torch.zeros(4, 3, 3, 3)
    with pytest.raises(ValueError, match="interleaved dy, dx"):
        modulated_deform_conv2d(x, torch.zeros(1, 9, 5, 5), torch.zeros(1, 9, 5, 5), weight)
    with pytest.raises(ValueError, match="mask must be"):
        modulated_deform_conv2d(x, torch.zeros(1, 18, 5, 5), torch.zeros(1, 18, 5, 5), weight)
    with pytest.raises(ValueError, match="input channels"):
        modulated_deform_conv2d(torch.zeros(1, 2, 5, 5), torch.zeros(1, 18, 5, 5), torch.zeros(1, 9, 5, 5), weight)
    with pytest.raises(ValueError, match="B×C×H×W"):
        modulated_deform_conv2d(torch.zeros(3, 5, 5), torch.zeros(1, 18, 5, 5), torch.zeros(1, 9, 5, 5), weight)


def test_module_has_no_bias_by_default_and_empty_batch():
    conv = ModulatedDeformConv2d(3, 4)
    assert conv.bias is None and tuple(conv.state_dict()) == ("weight",)
    out = conv(torch.zeros(0, 3, 5, 5), torch.zeros(0, 18, 5, 5), torch.zeros(0, 9, 5, 5))
    assert out.shape == (0, 4, 5, 5)
