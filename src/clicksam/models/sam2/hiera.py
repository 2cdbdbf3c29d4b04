"""SAM 2's image trunk: Hiera, a hierarchical ViT with windowed attention, query pooling at each
stage change and a windowed absolute position embedding (state-dict compatible with the official
``image_encoder.trunk.*`` weights)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.common import MLP
from clicksam.models.image_encoder import window_partition, window_unpartition


def pool_channels_last(x: torch.Tensor, pool: nn.Module) -> torch.Tensor:
    """Apply a B×C×H×W pooling module to a B×H×W×C tensor."""
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Self-attention on a B×H×W×C grid whose queries may be max-pooled (stage change: the output
    grid is the pooled one and the width changes from ``dim`` to ``dim_out``)."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: nn.Module | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)  # each B×HW×heads×hd
        if self.q_pool is not None:
            q = pool_channels_last(q.reshape(b, h, w, -1), self.q_pool)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class MultiScaleBlock(nn.Module):
    """Pre-norm block: (windowed or global) attention, optionally pooling the queries by
    ``q_stride`` and widening to ``dim_out`` (the shortcut is projected and pooled the same way),
    then an MLP."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        q_stride: tuple[int, int] | None = None,
        window_size: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.pool = nn.MaxPool2d(kernel_size=q_stride, stride=q_stride) if q_stride else None
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_pool=self.pool)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×H×W×dim -> B×H'×W'×dim_out (H' = H / q_stride when pooling)."""
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.pool is not None:
                shortcut = pool_channels_last(shortcut, self.pool)
        window = self.window_size
        if window > 0:
            x, padded = window_partition(x, window)
        x = self.attn(x)
        if window > 0:
            if self.q_stride:
                # the queries were pooled inside each window: smaller windows on the pooled grid
                window = window // self.q_stride[0]
                h, w = shortcut.shape[1:3]
                padded = (h + (window - h % window) % window, w + (window - w % window) % window)
            x = window_unpartition(x, window, padded, (shortcut.shape[1], shortcut.shape[2]))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """Hiera trunk: B×3×S×S normalised image -> one B×C_i×(S/4/2^i)×(S/4/2^i) map per stage,
    highest resolution first (``channel_list`` gives the C_i lowest resolution first, as the FPN neck
    takes them).

    Args:
        embed_dim, num_heads: width and heads of the first stage (doubled at each stage change).
        stages: number of blocks per stage.
        global_att_blocks: indices of the blocks with global attention.
        window_spec: window size per stage for the other blocks.
        window_pos_embed_bkg_spatial_size: (h, w) of the background position embedding, resized
            bicubically to the token grid.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        num_heads: int = 1,
        stages: Sequence[int] = (2, 3, 16, 3),
        global_att_blocks: Sequence[int] = (12, 16, 20),
        window_spec: Sequence[int] = (8, 4, 14, 7),
        window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14),
        q_pool: int = 3,
        q_stride: tuple[int, int] = (2, 2),
        dim_mul: float = 2.0,
        head_mul: float = 2.0,
    ) -> None:
        super().__init__()
        if len(stages) != len(window_spec):
            raise ValueError(f"stages {tuple(stages)} and window_spec {tuple(window_spec)} must have one entry per stage")
        self.stage_ends = [sum(stages[: i + 1]) - 1 for i in range(len(stages))]
        q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][:q_pool]
        self.patch_embed = PatchEmbed(embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))
        self.blocks = nn.ModuleList()
        stage = 0
        for i in range(sum(stages)):
            dim_out = embed_dim
            # the window lags by one block: the first block of a stage still uses the previous
            # stage's window (its queries are pooled inside it)
            window = 0 if i in global_att_blocks else window_spec[stage]
            if i - 1 in self.stage_ends:
                dim_out = int(embed_dim * dim_mul)
                num_heads = int(num_heads * head_mul)
                stage += 1
            self.blocks.append(MultiScaleBlock(
                embed_dim, dim_out, num_heads, q_stride=q_stride if i in q_pool_blocks else None, window_size=window,
            ))
            embed_dim = dim_out
        self.channel_list = [self.blocks[i].dim_out for i in self.stage_ends[::-1]]

    def position_embedding(self, hw: tuple[int, int]) -> torch.Tensor:
        """1×H×W×C: the background embedding resized to the grid plus the tiled window embedding."""
        pos = F.interpolate(self.pos_embed, size=hw, mode="bicubic")
        window = self.pos_embed_window
        pos = pos + window.tile([p // q for p, q in zip(pos.shape, window.shape)])
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        x = x + self.position_embedding((x.shape[1], x.shape[2]))
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


class PatchEmbed(nn.Module):
    """7×7 stride-4 convolution: B×3×H×W -> B×(H/4)×(W/4)×C (channels last)."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)
