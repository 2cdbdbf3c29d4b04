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
    with pytest.raises(ValueError, match="unknown model 'vit_x'; choose one of vit_h, vit_l, vit_b, tiny, "):
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


# ---------------------------------------------------------------- weights: never silently random
def _official_tiny(monkeypatch, cache_dir, seed: int = 3):
    """Make ``tiny`` look like a real size whose official file is ``tiny_official.pth`` (saved from a
    seeded build); returns that model. The file is not in the cache until the test puts it there."""
    import hashlib
    from dataclasses import replace

    from clicksam import registry
    from clicksam.registry import WeightsInfo

    source = clicksam.build_sam("tiny", seed=seed)
    staged = cache_dir.parent / "staged.pth"
    torch.save(source.state_dict(), staged)
    info = WeightsInfo("tiny_official.pth", staged.stat().st_size, hashlib.sha256(staged.read_bytes()).hexdigest())
    monkeypatch.setitem(registry._REGISTRY.configs, "tiny", replace(registry.get_config("tiny"), weights=info, tags=()))
    return source, staged, info


def test_real_sizes_have_official_weights_test_configs_do_not():
    assert all(clicksam.get_config(n).has_official_weights for n in ("vit_b", "vit_l", "vit_h"))
    assert not clicksam.get_config("tiny").has_official_weights


def test_a_real_size_without_weights_is_refused_with_the_download_instruction():
    from clicksam.download import MissingWeightsError, cached_checkpoint

    with pytest.raises(MissingWeightsError) as info:
        clicksam.build_sam("vit_b")
    message = str(info.value)
    assert "clicksam download vit_b" in message and str(cached_checkpoint("vit_b")) in message
    assert "random_weights=True" in message and "checkpoint=" in message
    assert info.value.model_name == "vit_b"


def test_random_weights_on_request_are_marked(tiny_model):
    with torch.device("meta"):  # the check happens before any weight is made: no 90 M parameters here
        model = clicksam.build_sam("vit_b", random_weights=True, device="meta")
    assert model.random_weights and model.model_name == "vit_b"
    assert tiny_model.random_weights  # a test config: random, and says so


def test_the_cached_official_file_is_found_and_used(tmp_path, monkeypatch):
    from clicksam.cache import default_cache_dir
    from clicksam.download import MissingWeightsError

    cache = default_cache_dir()
    source, staged, info = _official_tiny(monkeypatch, cache / "x")
    with pytest.raises(MissingWeightsError, match="tiny_official.pth"):
        clicksam.build_sam("tiny")
    cache.mkdir(parents=True, exist_ok=True)
    staged.rename(cache / info.filename)
    model = clicksam.build_sam("tiny")
    assert not model.random_weights and model.weights_sha256 == info.sha256
    assert torch.equal(model.mask_decoder.iou_token.weight, source.mask_decoder.iou_token.weight)
    forced = clicksam.build_sam("tiny", random_weights=True)  # random on purpose: the file is not used
    assert forced.random_weights and forced.weights_sha256 is None


def test_a_method_file_alone_gets_the_cached_base_or_is_refused(tmp_path, monkeypatch):
    from clicksam.cache import default_cache_dir
    from clicksam.checkpoint import save_method_file
    from clicksam.download import MissingWeightsError

    trained = clicksam.build_sam("tiny", methods=["stable-sam"], seed=7)
    method_file = tmp_path / "ssam.safetensors"
    save_method_file(method_file, trained, ["stable_sam."], ["stable-sam"])
    cache = default_cache_dir()
    source, staged, info = _official_tiny(monkeypatch, cache / "x")
    with pytest.raises(MissingWeightsError):  # the method file alone would sit on a random base
        clicksam.build_sam("tiny", checkpoint=[method_file])
    assert clicksam.build_sam("tiny", checkpoint=[method_file], random_weights=True).random_weights
    cache.mkdir(parents=True, exist_ok=True)
    staged.rename(cache / info.filename)
    model = clicksam.build_sam("tiny", checkpoint=[method_file])
    assert not model.random_weights and model.weights_sha256 == info.sha256 and model.stable_sam is not None


def test_random_weights_contradicting_a_base_checkpoint_is_refused(tmp_path):
    path = tmp_path / "base.pth"
    torch.save(clicksam.build_sam("tiny").state_dict(), path)
    with pytest.raises(ValueError, match="random_weights=True contradicts"):
        clicksam.build_sam("tiny", checkpoint=path, random_weights=True)
    assert not clicksam.build_sam("tiny", checkpoint=path).random_weights
