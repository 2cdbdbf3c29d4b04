"""HQ-SAM's decoder: the per-image reuse of the fused HQ feature, and its output selection."""
from __future__ import annotations

import pytest
import torch

from clicksam.models.hq_sam import get_hq_sam_config, hq_sam_from_config
from clicksam.models.hq_sam.mask_decoder_hq import run_upsampling


@pytest.fixture(scope="module")
def decoder():
    torch.manual_seed(0)
    return hq_sam_from_config(get_hq_sam_config("hq_tiny")).mask_decoder.eval()


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 256, 64, 64, generator=g), torch.randn(1, 64, 64, 64, generator=g)


def _direct(decoder, embed, early):
    return run_upsampling(decoder.embedding_encoder, embed) + run_upsampling(decoder.compress_vit_feat, early)


def test_hq_features_are_reused_for_the_same_image(decoder):
    embed, early = _inputs(1)
    with torch.no_grad():
        first = decoder.hq_features(embed, early)
        assert decoder.hq_features(embed, early) is first
        assert torch.allclose(first, _direct(decoder, embed, early), atol=1e-6)
        other = decoder.hq_features(*_inputs(2))  # another image
        assert other is not first and torch.allclose(other, _direct(decoder, *_inputs(2)), atol=1e-6)


def test_hq_features_recomputed_when_inputs_or_weights_change(decoder):
    embed, early = _inputs(3)
    with torch.no_grad():
        first = decoder.hq_features(embed, early)
        embed.mul_(2.0)  # the same tensor, changed in place (e.g. a refined embedding written back)
        second = decoder.hq_features(embed, early)
        assert second is not first and torch.allclose(second, _direct(decoder, embed, early), atol=1e-6)
        weight = decoder.compress_vit_feat[0].weight
        weight.mul_(0.5)  # new weights
        try:
            third = decoder.hq_features(embed, early)
            assert third is not second and torch.allclose(third, _direct(decoder, embed, early), atol=1e-6)
        finally:
            weight.mul_(2.0)


def test_no_reuse_when_gradients_flow(decoder):
    embed, early = _inputs(4)
    decoder.requires_grad_(True)
    first = decoder.hq_features(embed, early)
    second = decoder.hq_features(embed, early)
    assert first is not second and first.grad_fn is not None


def test_selection_is_hq_sams():
    """Multimask: the best of tokens 1-3 by IoU plus the HQ mask; single: token 0 plus the HQ mask."""
    decoder = hq_sam_from_config(get_hq_sam_config("hq_tiny")).mask_decoder
    masks = torch.arange(2 * 5, dtype=torch.float).reshape(2, 5, 1, 1).expand(2, 5, 2, 2)
    iou = torch.tensor([[0.1, 0.2, 0.9, 0.3], [0.8, 0.5, 0.1, 0.6]])
    out, score = decoder.select_outputs(masks, iou, multimask_output=True)
    assert out.shape == (2, 1, 2, 2) and torch.equal(score, torch.tensor([[0.9], [0.6]]))
    assert out[0, 0, 0, 0] == 2 + 4 and out[1, 0, 0, 0] == 8 + 9
    out, score = decoder.select_outputs(masks, iou, multimask_output=False, hq_token_only=True)
    assert torch.equal(score, iou[:, :1]) and out[0, 0, 0, 0] == 4 and out[1, 0, 0, 0] == 9
    out, _ = decoder.select_outputs(masks, iou, multimask_output=False)
    assert out[0, 0, 0, 0] == 0 + 4 and out[1, 0, 0, 0] == 5 + 9


def test_missing_features_are_refused():
    model = hq_sam_from_config(get_hq_sam_config("hq_tiny"))
    with pytest.raises(ValueError, match=r"lacks \['early_feature'\].*use HQSam.encode_features"):
        model.decode({"embedding": torch.zeros(1, 256, 64, 64)}, points=(torch.zeros(1, 1, 2), torch.ones(1, 1)))
