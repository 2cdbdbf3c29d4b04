"""TinyViT's parts against direct formulas."""
from __future__ import annotations

import itertools

import torch

from clicksam.models.hq_sam.tiny_vit import Attention, TinyViT


def test_attention_bias_index_is_the_first_encounter_order():
    """Each (|dy|, |dx|) offset gets the index at which a row-major scan over all point pairs first
    meets it (the layout of the released ``attention_biases``)."""
    for r in (1, 3, 7):
        points = list(itertools.product(range(r), range(r)))
        seen: dict[tuple[int, int], int] = {}
        expected = [[seen.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(seen)) for b in points] for a in points]
        attn = Attention(dim=8, num_heads=2, resolution=r)
        assert attn.attention_bias_idxs.tolist() == expected
        assert attn.attention_biases.shape == (2, len(seen))


def test_grids_and_early_feature_shapes():
    model = TinyViT(img_size=256, embed_dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_heads=(1, 2, 3, 4), window_sizes=(7, 7, 7, 7)).eval()
    with torch.no_grad():
        embedding, early = model.forward_features(torch.randn(2, 3, 256, 256))
    assert embedding.shape == (2, 256, 16, 16) and early.shape == (2, 24, 16, 16)
    assert [layer.blocks[0].input_resolution for layer in model.layers[1:]] == [(32, 32), (16, 16), (16, 16)]
