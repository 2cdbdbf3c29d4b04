"""The official FocSAM checkpoint: recognition, key mapping, and strict loading through build_sam."""
from __future__ import annotations

import pytest
import torch

from clicksam.methods.focsam import FocusRefiner
from clicksam.methods.focsam.checkpoint import (
    convert_official,
    is_official_focsam,
    read_shapes,
    synthetic_official_state_dict,
    write_synthetic_official_checkpoint,
)


@pytest.fixture(scope="module")
def shapes_file(shared_dir):
    return shared_dir / "reference" / "focsam_vit_h_state_dict_shapes.json"


def test_synthetic_state_dict_has_every_official_tensor(shapes_file):
    shapes = read_shapes(shapes_file)
    state = synthetic_official_state_dict(shapes)
    assert len(shapes) == 1256 and [(k, tuple(v.shape)) for k, v in state.items()] == shapes
    encoder = state["backbone.blocks.7.attn.qkv.weight"]
    assert encoder.stride() == (0, 0) and encoder.untyped_storage().nbytes() == 4  # one float, not 26 MB
    assert state["refine_head.blocks.0.cls2img.gamma1"].mean().item() == pytest.approx(1.0, abs=0.01)


def test_conversion_lands_on_every_clicksam_name_with_the_right_shape(shapes_file):
    from clicksam.build import sam_from_config
    from clicksam.registry import get_config

    obj = {"meta": {"iter": 160000}, "state_dict": synthetic_official_state_dict(shapes_file)}
    assert is_official_focsam(obj)
    sam_state, refiner_state = convert_official(obj)
    with torch.device("meta"):  # names and shapes of a ViT-H SAM without allocating 2.5 GB
        expected = {k: tuple(v.shape) for k, v in sam_from_config(get_config("vit_h")).state_dict().items()}
    assert {k: tuple(v.shape) for k, v in sam_state.items()} == expected
    assert {k: tuple(v.shape) for k, v in refiner_state.items()} == {
        k: tuple(v.shape) for k, v in FocusRefiner().state_dict().items()
    }
    # the renamed prompt-encoder modules and the encoder's own neck
    assert "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix" in sam_state
    assert "prompt_encoder.point_embeddings.3.weight" in sam_state
    assert sam_state["image_encoder.neck.2.weight"] is obj["state_dict"]["backbone.neck.2.weight"]
    assert refiner_state["blocks.11.cls2img.conv2.dcn.weight"] is obj["state_dict"][
        "refine_head.blocks.11.cls2img.conv2.dcn.weight"
    ]
    # the bare state dict converts the same way
    assert convert_official(obj["state_dict"])[1].keys() == refiner_state.keys()


def test_recognition_and_errors():
    refiner_key = {"refine_head.embed_proj.bias": torch.zeros(256)}
    assert is_official_focsam({"state_dict": refiner_key})
    assert not is_official_focsam({"image_encoder.pos_embed": torch.zeros(1)})
    assert not is_official_focsam({"state_dict": {"backbone.pos_embed": torch.zeros(1)}})
    assert not is_official_focsam(None)
    with pytest.raises(ValueError, match="not an official FocSAM checkpoint"):
        convert_official({"state_dict": {"backbone.pos_embed": torch.zeros(1)}})
    with pytest.raises(ValueError, match="outside backbone"):
        convert_official({"state_dict": {**refiner_key, "data_preprocessor.mean": torch.zeros(3)}})
    with pytest.raises(ValueError, match="not a tensor"):
        convert_official({"state_dict": {**refiner_key, "neck.no_mask_embed.weight": [1.0]}})
    with pytest.raises(ValueError, match="shapes must be"):
        read_shapes([("a", "not-a-shape-list", 3)])


@pytest.mark.slow
def test_build_sam_loads_the_official_file_strictly(shapes_file, tmp_path):
    """build_sam('vit_h', checkpoint=iter_160000.pth) with a random file of the exact structure."""
    from clicksam import build_sam

    path = write_synthetic_official_checkpoint(tmp_path / "iter_160000.pth", shapes_file, seed=5)
    assert path.stat().st_size < 200e6
    model = build_sam("vit_h", checkpoint=path)
    assert model.image_format == "BGR"
    assert isinstance(model.focus_refiner, FocusRefiner)
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    keys = [k for k, _ in read_shapes(shapes_file)]
    torch.testing.assert_close(model.focus_refiner.blocks[3].cls2img.conv2.dcn.weight,
                               state["refine_head.blocks.3.cls2img.conv2.dcn.weight"])
    torch.testing.assert_close(model.mask_decoder.iou_token.weight, state["decode_head.iou_token.weight"])
    torch.testing.assert_close(model.prompt_encoder.point_embeddings[2].weight, state["neck.point_embeds.2.weight"])
    qkv = model.image_encoder.blocks[31].attn.qkv.weight
    assert torch.all(qkv == 1e-4 * (keys.index("backbone.blocks.31.attn.qkv.weight") + 1))


def test_method_file_with_refiner_and_decoder_round_trips(tmp_path):
    """Our own FocSAM weights (refiner + fine-tuned decoder) as a clicksam method file."""
    from clicksam import build_sam
    from clicksam.checkpoint import save_method_file

    torch.manual_seed(0)
    model = build_sam("tiny", methods=["focsam"])
    with torch.no_grad():
        model.focus_refiner.blocks[4].cls_scale_proj.weight.fill_(0.7)
        model.mask_decoder.iou_token.weight.add_(1.0)
    path = save_method_file(tmp_path / "focsam.safetensors", model, ["focus_refiner.", "mask_decoder."], ["focsam"])
    loaded = build_sam("tiny", checkpoint=[path])
    assert loaded.focus_refiner.clicksam_trained and loaded.image_format == "RGB"
    for name in ("focus_refiner", "mask_decoder"):
        ours, theirs = getattr(model, name).state_dict(), getattr(loaded, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
