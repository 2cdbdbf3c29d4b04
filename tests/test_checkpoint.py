"""Checkpoint files: official layout, wrong architecture, truncated and corrupt files, method files."""
from __future__ import annotations

import pytest
import torch

import clicksam
from clicksam.checkpoint import read_method_file, save_method_file


@pytest.fixture
def tiny_file(tmp_path, tiny_model):
    path = tmp_path / "tiny_sam.pth"
    torch.save(tiny_model.state_dict(), path)
    return path


def test_official_layout_file_loads_strictly_and_identically(tiny_file, tiny_model):
    model = clicksam.build_sam("tiny", checkpoint=tiny_file)
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    assert model.weights_sha256 and len(model.weights_sha256) == 64


def _fake_vit_h_state_dict() -> dict:
    sd = {"image_encoder.patch_embed.proj.weight": torch.zeros(1280, 3, 1, 1)}
    for i in range(32):
        sd[f"image_encoder.blocks.{i}.norm1.weight"] = torch.zeros(1)
    return sd


def test_wrong_architecture_names_both(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(_fake_vit_h_state_dict(), path)
    with pytest.raises(ValueError, match=r"model\.pth: this is a vit_h checkpoint; you asked for vit_b"):
        clicksam.build_sam("vit_b", checkpoint=path)


def test_truncated_file_is_named(tiny_file):
    data = tiny_file.read_bytes()
    tiny_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"tiny_sam\.pth: not a readable PyTorch checkpoint .*truncated or corrupt"):
        clicksam.build_sam("tiny", checkpoint=tiny_file)


def test_truncated_official_file_reports_expected_size(tmp_path):
    path = tmp_path / "sam_vit_b_01ec64.pth"
    path.write_bytes(b"\0" * 1000)
    with pytest.raises(ValueError, match=r"expected 375,042,383 bytes for the official vit_b file, found 1,000"):
        clicksam.build_sam("vit_b", checkpoint=path)


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(ValueError, match="garbage.pth: not a readable PyTorch checkpoint"):
        clicksam.build_sam("tiny", checkpoint=bad)
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*absent.pth"):
        clicksam.build_sam("tiny", checkpoint=tmp_path / "absent.pth")


def test_not_a_sam_state_dict(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="other.pth: not a SAM checkpoint"):
        clicksam.build_sam("tiny", checkpoint=path)


def test_missing_keys_are_reported(tmp_path, tiny_model):
    sd = dict(tiny_model.state_dict())
    sd.pop("mask_decoder.iou_token.weight")
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"partial.pth: the SAM weights do not match the model: 1 missing"):
        clicksam.build_sam("tiny", checkpoint=path)


class TrainingMeta:  # an arbitrary object, as mmengine training files carry
    pass


def test_pickled_objects_need_trust(tmp_path, tiny_model):
    path = tmp_path / "train.pth"
    torch.save({"model": tiny_model.state_dict(), "meta": TrainingMeta()}, path)
    with pytest.raises(ValueError, match="trust_checkpoint=True"):
        clicksam.build_sam("tiny", checkpoint=path)
    model = clicksam.build_sam("tiny", checkpoint=path, trust_checkpoint=True)
    assert torch.equal(model.mask_decoder.iou_token.weight, tiny_model.mask_decoder.iou_token.weight)


def test_method_file_round_trip(tmp_path, tiny_file):
    model = clicksam.build_sam("tiny", checkpoint=tiny_file)
    with torch.no_grad():
        model.mask_decoder.iou_token.weight.add_(1.0)
    path = save_method_file(tmp_path / "decoder.safetensors", model, ["mask_decoder."], ["decoder"], {"steps": 3})
    tensors, meta = read_method_file(path)
    assert all(k.startswith("mask_decoder.") for k in tensors)
    assert meta["base_model"] == "tiny" and meta["steps"] == 3 and meta["base_sha256"] == model.weights_sha256
    loaded = clicksam.build_sam("tiny", checkpoint=[tiny_file, path])
    assert torch.equal(loaded.mask_decoder.iou_token.weight, model.mask_decoder.iou_token.weight)
    assert getattr(loaded.mask_decoder, "clicksam_trained", False)


def test_method_file_for_another_base_is_refused(tmp_path, tiny_model):
    path = save_method_file(tmp_path / "m.safetensors", tiny_model, ["mask_decoder."], ["decoder"])
    with pytest.raises(ValueError, match="m.safetensors: this method file was trained on tiny; you asked for vit_b"):
        clicksam.build_sam("vit_b", checkpoint=path, random_weights=True)


def test_safetensors_without_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="without clicksam method metadata"):
        clicksam.build_sam("tiny", checkpoint=path)
