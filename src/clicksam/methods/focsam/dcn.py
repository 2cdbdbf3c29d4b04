"""Modulated deformable 3×3 convolution (DCNv2) in plain PyTorch, sampled with ``grid_sample``.

Offset layout (the convention of mmcv's ``ModulatedDeformConv2d`` and of
``torchvision.ops.deform_conv2d``, which FocSAM's weights were trained with): for kernel point
``k = i * kw + j`` (row ``i``, column ``j``) the offset tensor holds ``dy`` in channel ``2k`` and
``dx`` in channel ``2k + 1``; the modulation mask of point ``k`` is channel ``k`` of the mask
tensor. Output pixel ``(h, w)`` reads the input at

    y = h * stride - pad + i * dilation + dy,    x = w * stride - pad + j * dilation + dx

with bilinear interpolation in which every corner outside the image counts as zero (so a point
with ``y <= -1``, ``y >= H``, ``x <= -1`` or ``x >= W`` reads zero), multiplies it by the mask and
sums ``weight[o, c, i, j] * value`` over ``c, i, j``.

FocSAM's ``DeformLayer`` computes ``dcn_offset(x)`` (27 channels): channels 0-17 are passed on
unchanged as the interleaved offsets above and channels 18-26, after a sigmoid, are the masks.

Speed: the four bilinear corners of every (pixel, kernel point) are gathered from the
channels-last input and summed with their bilinear weight × modulation in one ``embedding_bag``
call (the mask multiply rides in the per-sample weights), then one matmul with the
``(kh·kw·C) × O`` weight matrix does the sum over ``c, i, j``, a few images at a time so that the
sample matrix stays in cache. This is the formula above written directly, with no
``grid_sample`` normalisation and no transposed copies of the samples.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _base_grid(
    height_out: int,
    width_out: int,
    kernel_size: tuple[int, int],
    stride: int,
    padding: int,
    dilation: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Undeformed sampling positions: (y, x), each K×Hout×Wout, in input pixel units."""
    kh, kw = kernel_size
    ki = torch.arange(kh, device=device, dtype=dtype) * dilation
    kj = torch.arange(kw, device=device, dtype=dtype) * dilation
    hs = torch.arange(height_out, device=device, dtype=dtype) * stride - padding
    ws = torch.arange(width_out, device=device, dtype=dtype) * stride - padding
    ky = ki.view(kh, 1).expand(kh, kw).reshape(kh * kw, 1, 1)
    kx = kj.view(1, kw).expand(kh, kw).reshape(kh * kw, 1, 1)
    base_y = ky + hs.view(1, height_out, 1)
    base_x = kx + ws.view(1, 1, width_out)
    return base_y.expand(-1, -1, width_out), base_x.expand(-1, height_out, -1)


def modulated_deform_conv2d(
    x: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
) -> Tensor:
    """Modulated deformable convolution (DCNv2, one deformable group, one group).

    Args:
        x: input, B×C×H×W.
        offset: B×(2·kh·kw)×Hout×Wout, interleaved (dy, dx) per kernel point, in input pixels.
        mask: B×(kh·kw)×Hout×Wout modulation scalars (already through the sigmoid).
        weight: O×C×kh×kw convolution weight.
        bias: optional O bias.
        stride, padding, dilation: as in ``torch.nn.functional.conv2d`` (same value on both axes).

    Returns:
        B×O×Hout×Wout.
    """
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"x must be B×C×H×W and weight O×C×kh×kw, got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    batch, channels, height, width = x.shape
    out_channels, in_channels, kh, kw = weight.shape
    if in_channels != channels:
        raise ValueError(f"weight expects {in_channels} input channels but x has {channels}")
    num_points = kh * kw
    height_out = (height + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    width_out = (width + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    if offset.shape != (batch, 2 * num_points, height_out, width_out):
        raise ValueError(
            f"offset must be {(batch, 2 * num_points, height_out, width_out)} (interleaved dy, dx per "
            f"kernel point), got {tuple(offset.shape)}"
        )
    if mask.shape != (batch, num_points, height_out, width_out):
        raise ValueError(f"mask must be {(batch, num_points, height_out, width_out)}, got {tuple(mask.shape)}")
    if batch == 0:
        return x.new_zeros(0, out_channels, height_out, width_out)

    base_y, base_x = _base_grid(height_out, width_out, (kh, kw), stride, padding, dilation, x.device, x.dtype)
    pos_y = base_y + offset[:, 0::2]  # B×K×Hout×Wout
    pos_x = base_x + offset[:, 1::2]
    y0, x0 = torch.floor(pos_y), torch.floor(pos_x)
    fy, fx = pos_y - y0, pos_x - x0
    y0, x0 = y0.long(), x0.long()
    tap_y = torch.stack((y0, y0, y0 + 1, y0 + 1), dim=-1)  # B×K×Hout×Wout×4
    tap_x = torch.stack((x0, x0 + 1, x0, x0 + 1), dim=-1)
    inside = (tap_y >= 0) & (tap_y < height) & (tap_x >= 0) & (tap_x < width)
    # bilinear weight × modulation; a corner outside the image reads row 0 with weight 0
    tap_weight = torch.stack(((1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx), dim=-1)
    tap_weight = tap_weight * mask.unsqueeze(-1) * inside
    first_row = (torch.arange(batch, device=x.device) * (height * width)).view(batch, 1, 1, 1, 1)
    index = torch.where(inside, first_row + tap_y * width + tap_x, torch.zeros_like(tap_y))
    # rows ordered (b, hout, wout, k) so that each output pixel's K samples are one row of K·C
    index = index.permute(0, 2, 3, 1, 4).reshape(batch, -1, 4)
    tap_weight = tap_weight.permute(0, 2, 3, 1, 4).reshape(batch, -1, 4)
    table = x.permute(0, 2, 3, 1).reshape(-1, channels)  # channels-last rows, B·H·W
    # weight O×C×kh×kw -> (K·C)×O, matching the (k, c) order of a sample row
    weight_matrix = weight.permute(2, 3, 1, 0).reshape(num_points * channels, out_channels)
    if torch.onnx.is_in_onnx_export():
        # ONNX has no embedding_bag and the number of windows varies per click: one gather and a
        # weighted sum of the four corners over the whole batch (the same formula)
        taps = table[index.reshape(-1)].reshape(-1, 4, channels)
        sampled = (taps * tap_weight.reshape(-1, 4, 1)).sum(dim=1).reshape(-1, num_points * channels)
        out = sampled @ weight_matrix if bias is None else torch.addmm(bias, sampled, weight_matrix)
        return out.reshape(-1, height_out, width_out, out_channels).permute(0, 3, 1, 2)
    pieces = []
    # A few images at a time keep the (Hout·Wout)×(K·C) sample matrix in cache.
    chunk = max(1, torch.get_num_threads())
    for start in range(0, batch, chunk):
        stop = min(start + chunk, batch)
        sampled = F.embedding_bag(index[start:stop].reshape(-1, 4), table, mode="sum",
                                  per_sample_weights=tap_weight[start:stop].reshape(-1, 4))
        sampled = sampled.view(-1, num_points * channels)
        pieces.append(sampled @ weight_matrix if bias is None else torch.addmm(bias, sampled, weight_matrix))
    out = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    # B×O×Hout×Wout in channels-last memory (the layout the products leave)
    return out.view(batch, height_out, width_out, out_channels).permute(0, 3, 1, 2)


class ModulatedDeformConv2d(nn.Module):
    """The ``dcn`` module: only the weight (O×C×3×3, no bias in FocSAM), applied with given offsets."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1,
                 bias: bool = False) -> None:
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        fan_in, fan_out = in_channels * kernel_size**2, out_channels
        # Detectron2's c2_msra_fill as FocSAM uses it: normal with std sqrt(2 / (fan_in + fan_out)).
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / (fan_in + fan_out)))

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        """x B×C×H×W, offset B×18×H×W, mask B×9×H×W -> B×O×H×W."""
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, padding=self.padding)


class DeformLayer(nn.Module):
    """DCNv2 3×3 whose offsets and masks come from a 3×3 conv of its own input (``conv2``).

    ``dcn_offset``: Conv2d C→27 (18 interleaved offsets, then 9 mask logits); ``dcn``: the weight.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.dcn_offset = nn.Conv2d(in_channels, 27, kernel_size=3, padding=1)
        self.dcn = ModulatedDeformConv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """x B×C×H×W -> B×O×H×W."""
        offset_mask = self.dcn_offset(x)
        return self.dcn(x, offset_mask[:, :18], offset_mask[:, 18:].sigmoid())
