"""SAM's two-way transformer: prompt tokens and image features attend to each other."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.common import MLPBlock
from clicksam.models.hooks import NO_HOOKS, DecoderHooks, KVPlugin


class Attention(nn.Module):
    """Multi-head attention with optional down-projection of the internal width."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must divide the internal width {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        q_pe: Optional[torch.Tensor] = None,
        k_pe: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Attention of ``q`` (B×Nq×C) over ``k``/``v`` (B×Nk×C).

        ``q_pe``/``k_pe`` (1×N×C or B×N×C) are positional encodings added to ``q``/``k`` before
        their projection. Given here rather than pre-added, a fixed encoding's projection is
        computed once and reused (see :func:`project_with_pe`)."""
        q = self._heads(project_with_pe(self.q_proj, q, q_pe))
        k = self._heads(project_with_pe(self.k_proj, k, k_pe))
        v = self._heads(self.v_proj(v))
        out = F.scaled_dot_product_attention(q, k, v)
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


def _version(t: torch.Tensor) -> int:
    return 0 if t.is_inference() else t._version  # inference tensors keep no version counter


def project_with_pe(proj: nn.Linear, x: torch.Tensor, pe: Optional[torch.Tensor]) -> torch.Tensor:
    """``proj(x + pe)``, computed as ``x @ W.T + (pe @ W.T + b)`` with the bracket cached on ``proj``.

    SAM adds the same dense positional encoding to the image features in every attention of the
    decoder; projecting it once per weights instead of adding it per call saves a pass over the
    B×4096×256 features per attention and lets the addition ride in the matrix product. The
    cache is used only where the projection's weights take no gradient (inference, frozen SAM)
    and is keyed by the encoding tensor (held, so its storage cannot be reused) and the versions
    of the weights, so loading new weights or moving the model invalidates it.
    """
    if pe is None:
        return proj(x)
    weight, bias = proj.weight, proj.bias
    if (torch.is_grad_enabled() and weight.requires_grad) or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return proj(x + pe)
    key = (pe.data_ptr(), tuple(pe.shape), pe.stride(), _version(pe), weight.data_ptr(), _version(weight),
           None if bias is None else (bias.data_ptr(), _version(bias)), torch.is_inference_mode_enabled(), x.dtype)
    cache = proj.__dict__.get("_pe_projection")
    if cache is None or cache[0] != key:
        with torch.no_grad():
            projected = F.linear(pe.to(x.dtype), weight.to(x.dtype), None if bias is None else bias.to(x.dtype))
        cache = (key, pe, projected.contiguous())
        proj.__dict__["_pe_projection"] = cache
    projected = cache[2]
    w_t = weight.to(x.dtype).t()
    if x.shape[0] == 1 and projected.shape[0] == 1:
        return torch.addmm(projected[0], x[0], w_t).unsqueeze(0)
    return torch.baddbmm(projected, x, w_t.expand(x.shape[0], -1, -1))


class TwoWayAttentionBlock(nn.Module):
    """Self-attention of tokens, token-to-image, token MLP, image-to-token attention."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
        kv_plugin: Optional[KVPlugin] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        image_kv = keys if kv_plugin is None else kv_plugin(queries, keys)
        q = queries + query_pe
        queries = queries + self.cross_attn_token_to_image(q, image_kv, image_kv, k_pe=key_pe)
        queries = self.norm2(queries)

        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys, q, queries, q_pe=key_pe))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks then a final token-to-image attention."""

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim,
                activation,
                attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self,
        image_embedding: torch.Tensor,
        image_pe: torch.Tensor,
        point_embedding: torch.Tensor,
        hooks: DecoderHooks = NO_HOOKS,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            image_embedding: B×C×H×W; image_pe: 1×C×H×W (shared) or B×C×H×W; point_embedding: B×T×C.
            hooks: the key/value plugins of this call (see :class:`~clicksam.models.hooks.DecoderHooks`).
        Returns:
            tokens B×T×C and image features B×HW×C.
        """
        hooks.check(self.depth)
        keys = image_embedding.flatten(2).transpose(1, 2).contiguous()
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for i, layer in enumerate(self.layers):
            queries, keys = layer(queries, keys, point_embedding, key_pe, hooks.kv_plugin(i))
        q = queries + point_embedding
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, keys, keys, k_pe=key_pe))
        return queries, keys
