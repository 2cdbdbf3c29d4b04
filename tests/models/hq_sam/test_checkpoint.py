"""The official HQ-SAM file layouts (every key and shape of segment-anything-hq's builders), the
TinyViT classifier head skipped by name (listed exactly), strict loading and its errors."""
from __future__ import annotations

import pytest
import torch

from clicksam.models.hq_sam import HQ_SAM_CONFIGS, HQ_SAM_UNUSED, get_hq_sam_config, hq_sam_from_config, load_hq_sam_checkpoint
from clicksam.models.official_files import shape_table, split_ignored
from tests.reference_families import build_reference_sam_hq, meta_device, randomize_

TINY_VIT_HEAD = ["image_encoder.head.bias", "image_encoder.head.weight", "image_encoder.norm_head.bias", "image_encoder.norm_head.weight"]


@pytest.mark.parametrize("name", ["hq_vit_b", "hq_vit_l", "hq_vit_h"])
def test_vit_layouts_match_the_reference_builders(name):
    """Every key and shape, no memory: both sides on the meta device."""
    with meta_device():
        ref = shape_table(build_reference_sam_hq(name))
        ours = shape_table(hq_sam_from_config(get_hq_sam_config(name)))
    assert ref == ours


def test_tiny_vit_layout_matches_after_the_classifier_head():
    ref = shape_table(build_reference_sam_hq("hq_vit_tiny"))  # 10 M parameters: built for real
    with torch.device("meta"):
        ours = shape_table(hq_sam_from_config(get_hq_sam_config("hq_vit_tiny")))
    kept, skipped = split_ignored(dict.fromkeys(ref, torch.empty(0)), HQ_SAM_UNUSED)
    assert skipped == TINY_VIT_HEAD
    assert {k: ref[k] for k in kept} == ours


def test_registry_metadata_is_complete():
    names = {c.name for c in HQ_SAM_CONFIGS}
    assert {"hq_vit_b", "hq_vit_l", "hq_vit_h", "hq_vit_tiny"} <= names
    for config in HQ_SAM_CONFIGS:
        if "test" in config.tags:
            assert config.weights is None
            continue
        w = config.weights
        assert w is not None and len(w.sha256) == 64 and int(w.sha256, 16) >= 0 and w.num_bytes > 40_000_000
        assert w.download_url == f"https://huggingface.co/lkeab/hq-sam/resolve/main/{w.filename}"
    assert get_hq_sam_config("hq_vit_tiny").early_feature_dim == 160
    assert get_hq_sam_config("hq_vit_l").early_feature_dim == 1024


@pytest.fixture(scope="module")
def tinyvit_file(tmp_path_factory):
    """An official-layout file (a raw state dict, classifier head included) of the TinyViT test config."""
    ref = randomize_(build_reference_sam_hq("hq_tinyvit_test"), 4)
    path = tmp_path_factory.mktemp("hq") / "sam_hq_tinyvit_test.pth"
    torch.save(ref.state_dict(), path)
    return path, ref


def test_official_file_loads_strictly(tinyvit_file):
    path, ref = tinyvit_file
    ours = hq_sam_from_config(get_hq_sam_config("hq_tinyvit_test"))
    assert load_hq_sam_checkpoint(ours, path) == TINY_VIT_HEAD
    expected = {k: v for k, v in ref.state_dict().items() if k not in TINY_VIT_HEAD}
    got = ours.state_dict()
    assert set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in got)
    assert ours.weights_sha256 is not None and len(ours.weights_sha256) == 64


def test_errors_name_the_problem(tinyvit_file, tmp_path):
    path, ref = tinyvit_file
    vit = hq_sam_from_config(get_hq_sam_config("hq_tiny"))
    with pytest.raises(ValueError, match=r"this is a hq_tinyvit_test checkpoint; you asked for hq_tiny"):
        load_hq_sam_checkpoint(vit, path)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": ref.state_dict(), "epoch": 3}, wrapped)
    with pytest.raises(ValueError, match=r"expected a state dict of tensors"):
        load_hq_sam_checkpoint(vit, wrapped)
    # a plain SAM file (no HQ decoder weights) is not an HQ-SAM file of any size
    sam_state = {k: v for k, v in vit.state_dict().items() if not k.startswith(("mask_decoder.hf_", "mask_decoder.compress", "mask_decoder.embedding_"))}
    plain = tmp_path / "sam_tiny.pth"
    torch.save(sam_state, plain)
    with pytest.raises(ValueError, match=r"hq-sam checkpoint of no registered size .*missing .*mask_decoder\.(hf_|compress|embedding_)"):
        load_hq_sam_checkpoint(vit, plain)


def test_test_configs_are_small():
    for name in ("hq_tiny", "hq_tinyvit_test"):
        encoder = hq_sam_from_config(get_hq_sam_config(name)).image_encoder
        assert sum(p.numel() for p in encoder.parameters()) < 1_500_000  # hq_vit_tiny: 5 M, hq_vit_b: 86 M
