"""Chunked global attention equals the model's attention (relative positions included)."""
from __future__ import annotations

import pytest
import torch

from clicksam.models.image_encoder import Attention, ImageEncoderViT
from clicksam.onnx.encoder_model import EncoderExportModule, chunked_global_attention


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-zero relative-position tables and absolute positions (both start at zero untrained)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "rel_pos" in name or "pos_embed" in name:
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    return module


@pytest.mark.parametrize("rows_per_chunk", [1, 3, 5, 8])
@pytest.mark.parametrize("use_rel_pos", [True, False])
def test_chunks_equal_the_whole(rows_per_chunk, use_rel_pos):
    torch.manual_seed(0)
    attn = randomize(Attention(32, num_heads=2, use_rel_pos=use_rel_pos, input_size=(8, 6))).eval()
    x = torch.randn(2, 8, 6, 32)
    with torch.no_grad():
        expected, ours = attn(x), chunked_global_attention(attn, x, rows_per_chunk)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_export_module_equals_the_encoder():
    torch.manual_seed(0)
    encoder = randomize(ImageEncoderViT(img_size=128, embed_dim=32, depth=3, num_heads=2, out_chans=16, window_size=3,
                                        global_attn_indexes=(1,))).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected = encoder(x)
        ours = EncoderExportModule(encoder, rows_per_chunk=3)(x)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="rows_per_chunk"):
        EncoderExportModule(encoder, rows_per_chunk=0)
