"""An export-friendly view of SAM's image encoder: global attention in blocks of query rows.

A global-attention block of ViT-B attends over 64×64 = 4096 tokens: its attention logits, the
relative-position bias and the softmax are 12 heads × 4096 × 4096 float32 tensors of 805 MB each.
PyTorch never holds more than one of them at a time; onnxruntime's planner holds several, and a
ViT-B encoding peaked at 2.8-5.4 GB. :class:`EncoderExportModule` therefore computes global
attention for ``rows_per_chunk`` rows of query tokens at a time (1024 queries for ViT-B): every
query's softmax still runs over all keys, so the result is the same up to float round-off, and
the peak falls to about 1 GB (and the encoding gets slightly faster). Windowed blocks, the patch
embedding and the neck are the model's own modules. Weights are shared with the model, not copied.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.image_encoder import Attention, Block, ImageEncoderViT, relative_position_table

DEFAULT_ROWS_PER_CHUNK = 16


def chunked_global_attention(attn: Attention, x: torch.Tensor, rows_per_chunk: int) -> torch.Tensor:
    """``attn(x)`` for global attention, computed ``rows_per_chunk`` token rows of queries at a time.

    Args:
        attn: the block's :class:`~clicksam.models.image_encoder.Attention` (relative positions or not).
        x: B×H×W×C normalised tokens (the whole grid: global attention).
        rows_per_chunk: query rows (of W tokens each) per step.
    Returns:
        B×H×W×C, as ``attn(x)``.
    """
    b, h, w, _ = x.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    qkv = attn.qkv(x).reshape(b, h * w, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # each B×heads×HW×hd
    if attn.use_rel_pos:
        table_h = relative_position_table(h, h, attn.rel_pos_h)  # H×H×hd: (query row, key row)
        table_w = relative_position_table(w, w, attn.rel_pos_w)
    outputs = []
    for row in range(0, h, rows_per_chunk):
        rows = min(rows_per_chunk, h - row)
        q_chunk = q[:, :, row * w : (row + rows) * w]
        bias = None
        if attn.use_rel_pos:
            # the rows of relative_position_bias(q, ...) that belong to these queries
            grid_q = q_chunk.reshape(b * heads, rows, w, head_dim)
            bias_h = torch.einsum("bhwc,hkc->bhwk", grid_q, table_h[row : row + rows])
            bias_w = torch.einsum("bhwc,wkc->bhwk", grid_q, table_w)
            bias = (bias_h[:, :, :, :, None] + bias_w[:, :, :, None, :]).reshape(b, heads, rows * w, h * w)
        outputs.append(F.scaled_dot_product_attention(q_chunk, k, v, attn_mask=bias))
    out = torch.cat(outputs, dim=2)
    out = out.reshape(b, heads, h, w, head_dim).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return attn.proj(out)


class ChunkedGlobalBlock(nn.Module):
    """A global-attention :class:`~clicksam.models.image_encoder.Block` with chunked attention
    (``Block.forward`` otherwise). A module of its own, so that the exported nodes are named after
    the block (``/blocks.N/...``) and a profile can tell them apart."""

    def __init__(self, block: Block, rows_per_chunk: int) -> None:
        super().__init__()
        self.block = block
        self.rows_per_chunk = rows_per_chunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = self.block
        x = x + chunked_global_attention(block.attn, block.norm1(x), self.rows_per_chunk)
        return x + block.mlp(block.norm2(x))


class EncoderExportModule(nn.Module):
    """``ImageEncoderViT`` with chunked global attention (see the module docstring).

    Args:
        encoder: the model's image encoder (weights shared).
        rows_per_chunk: query token rows per attention step in global blocks.

    ``forward(x B×3×S×S normalised, padded) -> B×256×(S/16)×(S/16)``, as ``encoder(x)``.
    """

    def __init__(self, encoder: ImageEncoderViT, rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK) -> None:
        super().__init__()
        if rows_per_chunk < 1:
            raise ValueError(f"rows_per_chunk must be at least 1, got {rows_per_chunk}")
        self.patch_embed = encoder.patch_embed
        self.pos_embed = encoder.pos_embed
        self.blocks = nn.ModuleList(
            ChunkedGlobalBlock(block, int(rows_per_chunk)) if block.window_size == 0 else block for block in encoder.blocks
        )
        self.neck = encoder.neck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2)).contiguous()
