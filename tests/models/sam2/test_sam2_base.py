"""SAM 2's model-level contract: the feature bundle, the prompt layout, input errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clicksam.models.sam2 import FEATURE_NAMES, Sam2Transforms, get_sam2_config, sam2_from_config
from clicksam.models.sam2.sam2_base import merge_box_into_points


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return sam2_from_config(get_sam2_config("sam2_tiny")).eval()


def test_bundle_and_decoder_output_shapes(model):
    with torch.no_grad():
        features = model.encode_features(torch.randn(1, 3, 1024, 1024))
        assert tuple(features) == FEATURE_NAMES
        assert [tuple(f.shape) for f in features.values()] == [(1, 256, 64, 64), (1, 32, 256, 256), (1, 64, 128, 128)]
        points = (torch.tensor([[[100.0, 200.0]], [[500.0, 600.0]]]), torch.tensor([[1], [1]]))
        out = model.decode(features, points=points, boxes=torch.tensor([[0.0, 0, 900, 900]] * 2), multimask_output=True)
    assert out.low_res_logits.shape == (2, 3, 256, 256) and out.iou_predictions.shape == (2, 3)
    assert out.object_score_logits.shape == (2, 1)
    assert out.mask_tokens.shape == (2, 4, 256) and out.all_low_res_logits.shape == (2, 4, 256, 256)
    single_iou, = model.mask_decoder.select_outputs(out.all_low_res_logits, out.all_iou_predictions, False)[1:]
    assert single_iou.shape == (2, 1)
    assert model.prompt_encoder is model.sam_prompt_encoder and model.mask_decoder is model.sam_mask_decoder


def test_box_corners_come_first_with_labels_2_and_3():
    coords, labels = merge_box_into_points((torch.tensor([[[5.0, 6.0]]]), torch.tensor([[1]])), torch.tensor([[1.0, 2, 3, 4]]))
    assert coords.tolist() == [[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]] and labels.tolist() == [[2, 3, 1]]
    coords, labels = merge_box_into_points(None, torch.tensor([[1.0, 2, 3, 4]]))
    assert labels.tolist() == [[2, 3]]
    with pytest.raises(ValueError, match=r"2 boxes but 1 point sets"):
        merge_box_into_points((torch.zeros(1, 1, 2), torch.ones(1, 1)), torch.zeros(2, 4))


def test_incomplete_bundle_is_refused(model):
    with pytest.raises(ValueError, match=r"lacks \['high_res_s0', 'high_res_s1'\].*Sam2.encode_features"):
        model.decode({"embedding": torch.zeros(1, 256, 64, 64)})


def test_transforms_frame_and_errors():
    transforms = Sam2Transforms(1024)
    assert transforms.input_size((480, 640)) == (1024, 1024) and transforms.family == "sam2"
    assert transforms.apply_coords(np.array([[640.0, 480.0]]), (480, 640)).tolist() == [[1024.0, 1024.0]]
    assert transforms.apply_boxes(np.array([0.5, 0.25, 1.0, 1.0]), (480, 640), normalized=True).tolist() == [[512.0, 256.0, 1024.0, 1024.0]]
    assert transforms.output_low_res(torch.tensor([-100.0, 3.0, 50.0])).tolist() == [-32.0, 3.0, 32.0]
    with pytest.raises(ValueError, match=r"H×W×3 uint8 RGB"):
        transforms.image_to_input(np.zeros((10, 10, 3), dtype=np.float32))


def test_fused_upscaling_equals_the_layer_by_layer_one(model, monkeypatch):
    """The matrix-product path with skips read through strided views gives the masks of running
    the transposed convolutions layer by layer (two prompts sharing one image's skips)."""
    g = torch.Generator().manual_seed(5)
    src = torch.randn(2, 64 * 64, 256, generator=g)
    skips = (torch.randn(1, 32, 256, 256, generator=g), torch.randn(1, 64, 128, 128, generator=g))
    hyper_in = torch.randn(2, 4, 32, generator=g)
    decoder = model.mask_decoder
    with torch.no_grad():
        fused = decoder.masks_with_skips(src, (64, 64), skips, hyper_in)
        monkeypatch.setattr(type(decoder), "_fast_upscaling", lambda self: False)
        plain = decoder.masks_with_skips(src, (64, 64), skips, hyper_in)
    assert fused.shape == (2, 4, 256, 256) and torch.allclose(fused, plain, atol=1e-4, rtol=1e-5)
