"""TinyViT, MobileSAM's image encoder, as HQ-SAM's ``vit_tiny`` uses it (state-dict compatible with
the official ``image_encoder.*`` weights of ``sam_hq_vit_tiny.pth``).

Four stages: MBConv blocks at stride 4, then windowed-attention blocks (attention with a learned
bias per relative offset, a depthwise 3×3 convolution, an MLP). Patch merging halves the grid after
the first two stages; the last merge keeps the S/16 grid, as MobileSAM does so that the output
matches SAM's 64×64 embedding. ImageNet's classifier head of the released file (``head``,
``norm_head``) is not part of the model; the loader skips it by name."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.common import LayerNorm2d
from clicksam.models.image_encoder import window_partition, window_unpartition


class Conv2dBN(nn.Sequential):
    """Convolution without bias (``c``) followed by BatchNorm (``bn``)."""

    def __init__(self, in_chans: int, out_chans: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_chans, out_chans, kernel, stride, padding, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_chans))


class PatchEmbed(nn.Module):
    """Two stride-2 3×3 convolutions: B×3×H×W -> B×C×H/4×W/4."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            Conv2dBN(in_chans, embed_dim // 2, 3, 2, 1), nn.GELU(), Conv2dBN(embed_dim // 2, embed_dim, 3, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand, depthwise 3×3, 1×1 project, activation after the sum."""

    def __init__(self, chans: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(chans * expand_ratio)
        self.conv1 = Conv2dBN(chans, hidden)
        self.act1 = nn.GELU()
        self.conv2 = Conv2dBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2dBN(hidden, chans)
        self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.act3(y + x)


class PatchMerging(nn.Module):
    """1×1 conv, depthwise 3×3 conv of the given stride, 1×1 conv: a B×C×H×W map or B×HW×C
    tokens of an ``input_resolution`` grid -> B×(H'W')×out_dim tokens."""

    def __init__(self, input_resolution: tuple[int, int], dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.act = nn.GELU()
        self.conv1 = Conv2dBN(dim, out_dim)
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            h, w = self.input_resolution
            x = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
        x = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Pre-norm multi-head self-attention over the tokens of one window, plus a learned bias per
    head and absolute (|dy|, |dx|) offset."""

    def __init__(self, dim: int, num_heads: int, resolution: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, resolution * resolution))
        ys, xs = torch.meshgrid(torch.arange(resolution), torch.arange(resolution), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        # offset (dy, dx) has index dy·r + dx: the order in which a row-major scan first meets it
        offsets = (ys[:, None] - ys[None, :]).abs() * resolution + (xs[:, None] - xs[None, :]).abs()
        self.register_buffer("attention_bias_idxs", offsets, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×N×C tokens of one window each -> B×N×C."""
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, -1)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.key_dim], dim=3)
        bias = self.attention_biases[:, self.attention_bias_idxs]  # heads×N×N
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class Mlp(nn.Module):
    """Pre-norm MLP (``norm``, ``fc1``, GELU, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Windowed attention (zero-padded windows), a depthwise convolution, an MLP; on B×HW×C tokens."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int, mlp_ratio: float, local_conv_size: int) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.window_size = window_size
        self.attn = Attention(dim, num_heads, window_size)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        b, n, c = x.shape
        ws = self.window_size
        if h == ws and w == ws:
            y = self.attn(x)
        else:
            windows, padded = window_partition(x.reshape(b, h, w, c).contiguous(), ws)
            y = self.attn(windows.reshape(-1, ws * ws, c))
            y = window_unpartition(y.view(-1, ws, ws, c), ws, padded, (h, w)).reshape(b, n, c)
        x = x + y
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).reshape(b, c, n).transpose(1, 2)
        return x + self.mlp(x)


class ConvLayer(nn.Module):
    """The first stage: MBConv blocks, then a patch merging."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, downsample: PatchMerging) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class BasicLayer(nn.Module):
    """A transformer stage: TinyViT blocks, then an optional patch merging."""

    def __init__(self, blocks: Sequence[TinyViTBlock], downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """B×3×S×S normalised, padded image -> B×out_chans×S/16×S/16 embedding (see
    :meth:`forward_features` for the early feature HQ-SAM reads as well)."""

    def __init__(
        self,
        img_size: int = 1024,
        in_chans: int = 3,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand_ratio: float = 4.0,
        local_conv_size: int = 3,
        out_chans: int = 256,
    ) -> None:
        super().__init__()
        if not len(embed_dims) == len(depths) == len(num_heads) == len(window_sizes) == 4:
            raise ValueError("TinyViT takes four stages (embed_dims, depths, num_heads, window_sizes)")
        self.img_size = img_size
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        # grid of each stage: S/4, S/8, S/16, S/16 (the last merge has stride 1)
        grids = [img_size // 4, img_size // 8, img_size // 16, img_size // 16]
        strides = [2, 2, 1]
        self.layers = nn.ModuleList()
        for i in range(4):
            res = (grids[i], grids[i])
            down = PatchMerging(res, embed_dims[i], embed_dims[i + 1], strides[i]) if i < 3 else None
            if i == 0:
                self.layers.append(ConvLayer(embed_dims[0], depths[0], mbconv_expand_ratio, down))
            else:
                blocks = [
                    TinyViTBlock(embed_dims[i], res, num_heads[i], window_sizes[i], mlp_ratio, local_conv_size)
                    for _ in range(depths[i])
                ]
                self.layers.append(BasicLayer(blocks, down))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the embedding B×out_chans×S/16×S/16 and the early feature B×embed_dims[2]×S/16×S/16
        (the second stage's output after its patch merging: HQ-SAM's ``interm_embeddings[0]``)."""
        grid = self.img_size // 16
        b = x.shape[0]
        x = self.layers[0](self.patch_embed(x))
        x = self.layers[1](x)
        early = x.transpose(1, 2).reshape(b, -1, grid, grid)
        for layer in self.layers[2:]:
            x = layer(x)
        embedding = self.neck(x.transpose(1, 2).reshape(b, -1, grid, grid))
        return embedding, early

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]
