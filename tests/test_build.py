"""Registry and build_sam: names, shapes, errors."""
from __future__ import annotations

import pytest
import torch

import clicksam
from clicksam.build import count_parameters


def test_registry_lists_the_official_sizes_and_tiny():
    names = clicksam.list_models()
    assert {"vit_b", "vit_l", "vit_h", "tiny"} <= set(names)
    assert "tiny" not in clicksam.list_models(include_test=False)
    w = clicksam.get_config("vit_b").weights
    assert w.filename == "sam_vit_b_01ec64.pth" and w.num_bytes == 375_042_383
    assert w.download_url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"


def test_unknown_model_name_lists_choices():
    with pytest.raises(ValueError, match="unknown model 'vit_x'; choose one of vit_h, vit_l, vit_b, tiny"):
        clicksam.build_sam("vit_x")


def test_unknown_method_stage_is_refused():
    with pytest.raises(ValueError, match="unknown method stage"):
        clicksam.build_sam("tiny", methods=["magic"])


def test_tiny_shapes(tiny_model):
    x = torch.rand(2, 3, 1024, 1024) * 255
    with torch.no_grad():
        emb = tiny_model.encode(tiny_model.preprocess(x))
        assert emb.shape == (2, 256, 64, 64)
        coords = torch.rand(2, 3, 2) * 1024
        labels = torch.ones(2, 3, dtype=torch.int)
        for multimask, c in ((True, 3), (False, 1)):
            out = tiny_model.decode(emb, points=(coords, labels), multimask_output=multimask)
            assert out.low_res_logits.shape == (2, c, 256, 256) and out.iou_predictions.shape == (2, c)
            assert out.mask_tokens.shape == (2, 4, 256) and out.all_low_res_logits.shape == (2, 4, 256, 256)
        box_out = tiny_model.decode(emb[:1], boxes=torch.tensor([[10.0, 10.0, 500.0, 600.0]]), multimask_output=False)
        assert box_out.low_res_logits.shape == (1, 1, 256, 256)
        up = tiny_model.postprocess_masks(out.low_res_logits, (683, 1024), (400, 600))
        assert up.shape == (2, 1, 400, 600)


def test_shared_embedding_with_several_prompts_and_mismatched_batch(tiny_model):
    emb = torch.randn(1, 256, 64, 64)
    coords, labels = torch.rand(5, 1, 2) * 1024, torch.ones(5, 1)
    assert tiny_model.decode(emb, points=(coords, labels)).low_res_logits.shape == (5, 3, 256, 256)
    with pytest.raises(ValueError, match="image_embeddings has batch 2 but the prompts have batch 5"):
        tiny_model.decode(torch.randn(2, 256, 64, 64), points=(coords, labels))


def test_parameter_counts_match_the_published_sizes():
    with torch.device("meta"):
        counts = {n: count_parameters(clicksam.build.sam_from_config(clicksam.get_config(n))) for n in ("vit_b", "vit_l", "vit_h")}
    assert 93e6 < counts["vit_b"] < 94e6
    assert 311e6 < counts["vit_l"] < 313e6
    assert 640e6 < counts["vit_h"] < 642e6


def test_package_import_has_no_side_effects():
    import subprocess
    import sys

    code = "import sys, clicksam; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_untrained_builds_are_reproducible_and_leave_the_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = clicksam.build_sam("tiny")
    after = torch.rand(1)
    b = clicksam.build_sam("tiny")
    c = clicksam.build_sam("tiny", seed=1)
    assert torch.equal(before, after)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert not torch.equal(a.mask_decoder.iou_token.weight, c.mask_decoder.iou_token.weight)


def test_model_built_in_inference_mode_decodes():
    with torch.inference_mode():
        model = clicksam.build_sam("tiny")
        out = model.decode(torch.zeros(1, 256, 64, 64), points=(torch.tensor([[[5.0, 5.0]]]), torch.ones(1, 1)))
    assert out.low_res_logits.shape == (1, 3, 256, 256)
