"""Building blocks of FocSAM's FocusRefiner (SPEC §4), with the official parameter names.

All modules work on a batch of windows: ``W`` selected windows of ``N = 16·16`` cells, C channels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clicksam.methods.focsam.dcn import DeformLayer
from clicksam.methods.focsam.scalar_mlp import scalar_relu_mlp, scaled_tanh


class ZeroSlotAttention(nn.Module):
    """Multi-head attention whose keys and values get one extra all-zero entry (after projection).

    The zero key scores 0 against every query, so it acts as an "attend to nothing" slot that
    absorbs softmax mass without adding to the output. Parameters: ``q_proj``, ``k_proj``,
    ``v_proj``, ``proj`` (C→C with bias).
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)

    def _heads(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        return x.view(batch, tokens, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q B×Nq×C, k and v B×Nk×C -> B×Nq×C."""
        if q.shape[1] == 1 and k is v:
            return self._single_query(q, k)
        if k is v and q is k:
            # self-attention: one matmul for the three projections
            weight = torch.cat((self.q_proj.weight, self.k_proj.weight, self.v_proj.weight))
            bias = torch.cat((self.q_proj.bias, self.k_proj.bias, self.v_proj.bias))
            q, k, v = F.linear(q, weight, bias).chunk(3, dim=-1)
        else:
            q, k, v = self.q_proj(q), self.k_proj(k), self.v_proj(v)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        k = F.pad(k, (0, 0, 0, 1))  # the zero key slot
        v = F.pad(v, (0, 0, 0, 1))  # and its zero value
        out = F.scaled_dot_product_attention(q, k, v)  # scale head_dim ** -0.5
        batch, _, tokens, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, -1))

    def _single_query(self, q: Tensor, kv: Tensor) -> Tensor:
        """One query against N tokens without projecting the tokens (same result, ~30× cheaper).

        With q_h the projected query of head h: logits = (W_k,hᵀ q_h)·f_n + q_h·b_k,h, and
        Σ_n a_n (W_v,h f_n + b_v,h) = W_v,h (Σ_n a_n f_n) + b_v,h Σ_n a_n, where the zero slot
        adds exp(0) to the softmax normaliser and nothing to the sums.
        """
        batch, _, dim = q.shape
        heads, head_dim = self.num_heads, dim // self.num_heads
        scale = head_dim**-0.5
        q_h = (self.q_proj(q) * scale).view(batch, heads, head_dim)  # B×h×d
        w_k = self.k_proj.weight.view(heads, head_dim, dim)
        w_v = self.v_proj.weight.view(heads, head_dim, dim)
        q_in = torch.einsum("bhd,hdc->bhc", q_h, w_k)  # B×h×C
        const = (q_h * self.k_proj.bias.view(heads, head_dim)).sum(-1, keepdim=True)  # B×h×1
        logits = torch.baddbmm(const, q_in, kv.transpose(1, 2))  # B×h×N
        top = logits.amax(dim=-1, keepdim=True).clamp(min=0.0)  # the zero slot's logit is 0
        weights = torch.exp(logits - top)
        norm = weights.sum(dim=-1, keepdim=True) + torch.exp(-top)
        weights = weights / norm
        pooled = torch.bmm(weights, kv)  # B×h×C
        out = torch.einsum("bhc,hdc->bhd", pooled, w_v) + self.v_proj.bias.view(heads, head_dim) * weights.sum(
            dim=-1, keepdim=True
        )
        return self.proj(out.reshape(batch, 1, dim))

class QueryUpdate(nn.Module):
    """``img2cls``: the query reads its window (pre-norm cross-attention, then an MLP, layer-scaled).

    q ← q + γ1·Attn(LN_q q, LN_kv f, LN_kv f);  q ← q + γ2·MLP(LN q).
    """

    def __init__(self, embed_dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(mlp_ratio * embed_dim)
        self.norm_q = nn.LayerNorm(embed_dim)
        self.norm_kv = nn.LayerNorm(embed_dim)
        self.attn = ZeroSlotAttention(embed_dim, num_heads)
        self.gamma1 = nn.Parameter(torch.ones(embed_dim))
        self.norm = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, embed_dim))
        self.gamma2 = nn.Parameter(torch.ones(embed_dim))

    def forward(self, query: Tensor, tokens: Tensor) -> Tensor:
        """query W×1×C, tokens W×N×C -> updated query W×1×C."""
        kv = self.norm_kv(tokens)
        query = query + self.gamma1 * self.attn(self.norm_q(query), kv, kv)
        return query + self.gamma2 * self.mlp(self.norm(query))


class PDyReLU(nn.Module):
    """Prompt-aware dynamic ReLU: max of a pixel-conditioned and a channel-conditioned affine map.

    Pixel branch: s = x̂·cᵀ per token → Linear(1,C)-ReLU-Linear(C,2C)-Tanh, ·exp(pixel_scale)
    + pixel_bias → (a0, b0). Channel branch: window mean of x̂ → Linear(C,C)-ReLU-Linear(C,2C)-Tanh,
    ·exp(channel_scale) + channel_bias → (a1, b1). Output max(a0·x̂ + b0, a1·x̂ + b1).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.pixel_scale = nn.Parameter(torch.zeros(2 * channels))
        self.pixel_bias = nn.Parameter(torch.zeros(2 * channels))
        self.pixel_mlp = nn.Sequential(
            nn.Linear(1, channels), nn.ReLU(), nn.Linear(channels, 2 * channels), nn.Tanh()
        )
        self.channel_scale = nn.Parameter(torch.zeros(2 * channels))
        self.channel_bias = nn.Parameter(torch.zeros(2 * channels))
        self.channel_mlp = nn.Sequential(
            nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, 2 * channels), nn.Tanh()
        )
        self._pixel_tables: dict = {}  # inference cache of the pixel MLP's piecewise-linear tables

    def forward(self, x: Tensor, cls: Tensor) -> Tensor:
        """x W×N×C (normalised tokens), cls W×1×C (projected query) -> W×N×C."""
        c = self.channels
        similarity = torch.matmul(x, cls.transpose(1, 2))  # W×N×1
        # the MLPs' layers are applied by hand (exactly, see scalar_mlp) but keep the official names
        doubled = scalar_relu_mlp(similarity, self.pixel_mlp[0], self.pixel_mlp[2], 2.0, self._pixel_tables)  # W×N×2C
        pixel = scaled_tanh(doubled, self.pixel_scale.exp(), self.pixel_bias, doubled=True)
        hidden = F.relu(self.channel_mlp[0](x.mean(dim=1, keepdim=True)))
        channel = scaled_tanh(self.channel_mlp[2](hidden), self.channel_scale.exp(), self.channel_bias)  # W×1×2C
        pixel_act = torch.addcmul(pixel[..., c:], pixel[..., :c], x)
        channel_act = torch.addcmul(channel[..., c:], channel[..., :c], x)
        return torch.maximum(pixel_act, channel_act)


class WindowUpdate(nn.Module):
    """``cls2img``: the window reads itself and the query (self-attention, P-DyReLU, DCNv2).

    f̂ = Attn(f, f, f); f1 = f + γ1·P-DyReLU(LN f̂, LN(Linear q));
    out = f + γ2·ReLU(GroupNorm1(DCNv2(f1))).
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.cls_proj = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.LayerNorm(embed_dim))
        self.attn = ZeroSlotAttention(embed_dim, num_heads)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.relu1 = PDyReLU(embed_dim)
        self.conv2 = DeformLayer(embed_dim, embed_dim)
        self.norm2 = nn.GroupNorm(1, embed_dim)
        self.gamma1 = nn.Parameter(torch.ones(1, embed_dim, 1, 1))
        self.gamma2 = nn.Parameter(torch.ones(1, embed_dim, 1, 1))

    def forward(self, windows: Tensor, query: Tensor) -> Tensor:
        """windows W×C×h×w, query W×1×C -> W×C×h×w."""
        count, dim, height, width = windows.shape
        tokens = windows.flatten(2).transpose(1, 2).contiguous()  # W×N×C, row-major cells
        attended = self.attn(tokens, tokens, tokens)
        activated = self.relu1(self.norm1(attended), self.cls_proj(query))
        activated = activated.transpose(1, 2).reshape(count, dim, height, width)
        mixed = windows + self.gamma1 * activated
        conv = F.relu(self.norm2(self.conv2(mixed)))
        return windows + self.gamma2 * conv
