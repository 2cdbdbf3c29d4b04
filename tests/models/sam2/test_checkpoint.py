"""The official SAM 2.1 file layout: every key and shape of the reference models built from sam2's
own configs, the video-only parts skipped by name (listed exactly), strict loading and its errors."""
from __future__ import annotations

import pytest
import torch

from clicksam.models.official_files import shape_table, split_ignored
from clicksam.models.sam2 import SAM2_CONFIGS, SAM2_VIDEO_ONLY, get_sam2_config, load_sam2_checkpoint, sam2_from_config
from tests.reference_families import build_reference_sam2, meta_device, randomize_

OFFICIAL = [c.name for c in SAM2_CONFIGS if "test" not in c.tags]

# top-level names of SAM2Base's video-only weights in a SAM 2.1 file (the image model has none of them)
VIDEO_ONLY_NAMES = {
    "maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr", "no_obj_embed_spatial", "memory_attention",
    "memory_encoder", "mask_downsample", "obj_ptr_proj", "obj_ptr_tpos_proj",
}


@pytest.fixture(scope="module")
def reference_layouts():
    """{name: {key: shape}} of SAM2Base built by sam2 from each official 2.1 config (meta device)."""
    layouts = {}
    for name in OFFICIAL:
        with meta_device():
            layouts[name] = shape_table(build_reference_sam2(name, device="meta"))
    return layouts


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_layout_matches_after_the_video_parts(reference_layouts, name):
    layout = reference_layouts[name]
    with torch.device("meta"):
        ours = shape_table(sam2_from_config(get_sam2_config(name)))
    kept = {k: v for k, v in layout.items() if k in ours}
    skipped = sorted(set(layout) - set(ours))
    assert kept == ours  # every image-model key of the file, with its shape
    assert {k.split(".")[0] for k in skipped} == VIDEO_ONLY_NAMES
    _, ignored = split_ignored(dict.fromkeys(layout, torch.empty(0)), SAM2_VIDEO_ONLY)
    assert ignored == skipped  # the skip list drops exactly the video-only keys
    for name_or_prefix in SAM2_VIDEO_ONLY:  # and has no stale entry
        assert any(k == name_or_prefix or k.startswith(name_or_prefix) for k in skipped), name_or_prefix


def test_architecture_numbers_match_the_config_files():
    sizes = {c.name: (c.embed_dim, c.num_heads, c.stages, c.global_att_blocks, c.window_spec) for c in SAM2_CONFIGS}
    assert sizes["sam2.1_hiera_t"] == (96, 1, (1, 2, 7, 2), (5, 7, 9), (8, 4, 14, 7))
    assert sizes["sam2.1_hiera_l"] == (144, 2, (2, 6, 36, 4), (23, 33, 43), (8, 4, 16, 8))
    assert get_sam2_config("sam2.1_hiera_b+").backbone_channel_list == (896, 448, 224, 112)


def test_registry_metadata_is_complete():
    for config in SAM2_CONFIGS:
        if "test" in config.tags:
            assert config.weights is None
            continue
        w = config.weights
        assert w is not None and len(w.sha256) == 64 and int(w.sha256, 16) >= 0
        assert w.num_bytes > 100_000_000 and w.download_url.endswith(w.filename)
        assert w.download_url.startswith("https://dl.fbaipublicfiles.com/segment_anything_2/092824/")


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    """An official-layout file (``{"model": state_dict}`` with the video parts) of the test config."""
    ref = randomize_(build_reference_sam2("sam2_tiny"), 2)
    path = tmp_path_factory.mktemp("sam2") / "sam2_tiny_random.pt"
    torch.save({"model": ref.state_dict()}, path)
    return path, ref


def test_official_file_loads_strictly_and_skips_the_video_parts(tiny_file):
    path, ref = tiny_file
    ours = sam2_from_config(get_sam2_config("sam2_tiny"))
    skipped = load_sam2_checkpoint(ours, path)
    assert {k.split(".")[0] for k in skipped} == VIDEO_ONLY_NAMES
    expected = {k: v for k, v in ref.state_dict().items() if k not in skipped}
    got = ours.state_dict()
    assert set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in got)
    assert ours.weights_sha256 is not None and len(ours.weights_sha256) == 64


def test_wrong_size_is_refused_by_name(tiny_file):
    path, _ = tiny_file
    with torch.device("meta"):
        other = sam2_from_config(get_sam2_config("sam2.1_hiera_t"))
    with pytest.raises(ValueError, match=r"this is a sam2_tiny checkpoint; you asked for sam2.1_hiera_t"):
        load_sam2_checkpoint(other, path)


def test_bad_files_are_refused_with_a_message(tiny_file, tmp_path):
    path, ref = tiny_file
    ours = sam2_from_config(get_sam2_config("sam2_tiny"))
    raw = tmp_path / "raw.pt"
    torch.save(ref.state_dict(), raw)  # no "model" key
    with pytest.raises(ValueError, match=r"under the 'model' key"):
        load_sam2_checkpoint(ours, raw)
    state = dict(ref.state_dict())
    del state["sam_mask_decoder.conv_s0.weight"]
    missing = tmp_path / "missing.pt"
    torch.save({"model": state}, missing)
    with pytest.raises(ValueError, match=r"of no registered size .*1 missing .*conv_s0"):
        load_sam2_checkpoint(ours, missing)
    sam1 = tmp_path / "sam.pt"
    torch.save({"model": {"image_encoder.patch_embed.proj.weight": torch.zeros(8, 3, 16, 16)}}, sam1)
    with pytest.raises(ValueError, match=r"not a sam2 checkpoint"):
        load_sam2_checkpoint(ours, sam1)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"truncated or corrupt"):
        load_sam2_checkpoint(ours, truncated)


def test_test_config_is_small_and_quick():
    import time

    start = time.perf_counter()
    model = sam2_from_config(get_sam2_config("sam2_tiny"))
    assert time.perf_counter() - start < 5.0
    trunk = sum(p.numel() for p in model.image_encoder.trunk.parameters())
    assert trunk < 1_000_000  # hiera_t: 27 M; the decoder and neck stay full size
