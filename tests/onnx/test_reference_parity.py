"""The exported files against segment-anything's own ONNX wrapper (``SamOnnxModel``, run eagerly
in torch on the same weights): same inputs, same outputs, same single-mask choice."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.onnx.conftest import make_feed
from tests.onnx.test_export import TOL, UPSCALED_TOL, graph_points, low_res_mask, prompts
from tests.reference_sam import reference_sam


@pytest.fixture(scope="module")
def reference_model(tiny_model):
    """segment-anything's Sam with the tiny config, holding the tiny model's weights."""
    reference_sam()
    from segment_anything.build_sam import _build_sam

    from clicksam.registry import get_config

    config = get_config("tiny")
    model = _build_sam(config.encoder_embed_dim, config.encoder_depth, config.encoder_num_heads,
                       list(config.encoder_global_attn_indexes))
    model.load_state_dict(tiny_model.state_dict())
    return model.eval()


def reference_outputs(reference_model, feed: dict[str, np.ndarray], single_mask: bool) -> list[np.ndarray]:
    from segment_anything.utils.onnx import SamOnnxModel

    wrapper = SamOnnxModel(reference_model, return_single_mask=single_mask).eval()
    with torch.no_grad():
        outputs = wrapper(**{name: torch.from_numpy(value) for name, value in feed.items()})
    return [o.numpy() for o in outputs]


@pytest.mark.parametrize("single_mask", [False, True], ids=["four_masks", "single_mask"])
@pytest.mark.parametrize("case", ["one_click", "box", "box_and_clicks"])
def test_matches_segment_anything_onnx_wrapper(
    case, single_mask, reference_model, four_mask_file, single_mask_file, ort_session_factory, embedding
):
    mask_input = low_res_mask() if case == "box_and_clicks" else None
    feed = make_feed(embedding, *graph_points(*prompts(case)), mask_input)
    path = single_mask_file if single_mask else four_mask_file
    masks, iou, low_res = ort_session_factory(path).run(None, feed)
    ref_masks, ref_iou, ref_low_res = reference_outputs(reference_model, feed, single_mask)
    assert masks.shape == ref_masks.shape and iou.shape == ref_iou.shape
    assert np.abs(iou - ref_iou).max() < TOL
    assert np.abs(low_res - ref_low_res).max() < TOL
    assert np.abs(masks - ref_masks).max() < UPSCALED_TOL
