"""Parity with the reference segment-anything package, on identical random weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import clicksam
from clicksam.build import sam_from_config
from clicksam.registry import get_config
from clicksam.images import read_image
from tests.reference_sam import reference_sam

TOL = 1e-4


def _pair(name: str, seed: int = 0):
    """(reference model, clicksam model) with the same random weights."""
    sa = reference_sam()
    from segment_anything.build_sam import _build_sam

    cfg = get_config(name)
    torch.manual_seed(seed)
    ref = _build_sam(cfg.encoder_embed_dim, cfg.encoder_depth, cfg.encoder_num_heads, list(cfg.encoder_global_attn_indexes))
    ours = sam_from_config(cfg)
    ours.load_state_dict(ref.state_dict(), strict=True)
    # random weights everywhere (the reference zero-inits rel_pos and pos_embed)
    with torch.no_grad():
        for (k, p) in ref.state_dict().items():
            if p.dtype.is_floating_point and ("rel_pos" in k or "pos_embed" in k):
                p.copy_(torch.randn_like(p) * 0.02)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref.eval(), ours.eval()


@pytest.fixture(scope="module")
def tiny_pair():
    return _pair("tiny")


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def test_image_embedding_matches(tiny_pair):
    ref, ours = tiny_pair
    torch.manual_seed(1)
    x = torch.rand(1, 3, 1024, 1024) * 255
    with torch.no_grad():
        assert _max_diff(ref.image_encoder(ref.preprocess(x)), ours.encode(ours.preprocess(x))) < TOL


def test_prompt_embeddings_match(tiny_pair):
    ref, ours = tiny_pair
    coords = torch.tensor([[[100.0, 200.0], [500.5, 20.0], [1000.0, 999.0]]])
    labels = torch.tensor([[1, 0, 1]])
    box = torch.tensor([[10.0, 20.0, 700.0, 800.0]])
    masks = torch.randn(1, 1, 256, 256)
    with torch.no_grad():
        for points, boxes, m in [((coords, labels), None, None), ((coords, labels), box, masks), (None, box, None)]:
            rs, rd = ref.prompt_encoder(points=points, boxes=boxes, masks=m)
            os_, od = ours.prompt_encoder(points=points, boxes=boxes, masks=m)
            assert rs.shape == os_.shape and _max_diff(rs, os_) < TOL
            assert _max_diff(rd, od) < TOL
        assert _max_diff(ref.prompt_encoder.get_dense_pe(), ours.prompt_encoder.get_dense_pe()) < TOL


@pytest.mark.parametrize("multimask", [True, False])
def test_decoder_logits_and_iou_match(tiny_pair, multimask):
    ref, ours = tiny_pair
    torch.manual_seed(2)
    emb = torch.randn(1, 256, 64, 64)
    coords = torch.tensor([[[300.0, 400.0], [50.0, 60.0]], [[10.0, 900.0], [512.0, 512.0]]])
    labels = torch.tensor([[1, 0], [1, 1]])
    with torch.no_grad():
        sparse, dense = ref.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        rm, ri = ref.mask_decoder(emb, ref.prompt_encoder.get_dense_pe(), sparse, dense, multimask)
        out = ours.decode(emb, points=(coords, labels), multimask_output=multimask)
    assert rm.shape == out.low_res_logits.shape == (2, 3 if multimask else 1, 256, 256)
    assert _max_diff(rm, out.low_res_logits) < TOL
    assert _max_diff(ri, out.iou_predictions) < TOL


def test_predictor_end_to_end_on_real_photo(tiny_pair, shared_dir):
    sa = reference_sam()
    ref, ours = tiny_pair
    image = read_image(shared_dir / "data/Berkeley/images/101085.jpg")
    ref_pred, our_pred = sa.SamPredictor(ref), clicksam.SamPredictor(ours)
    ref_pred.set_image(image)
    our_pred.set_image(image)
    assert ref_pred.input_size == our_pred.input_size and ref_pred.original_size == our_pred.original_size
    assert _max_diff(ref_pred.features, our_pred.features) < TOL
    pts, lbl = np.array([[120, 200], [300, 100]]), np.array([1, 0])
    box = np.array([50, 40, 400, 300])
    for kwargs in [dict(point_coords=pts, point_labels=lbl), dict(point_coords=pts, point_labels=lbl, box=box), dict(box=box)]:
        for multimask in (True, False):
            rm, rs, rl = ref_pred.predict(multimask_output=multimask, return_logits=True, **kwargs)
            om, os_, ol = our_pred.predict(multimask_output=multimask, return_logits=True, **kwargs)
            assert np.abs(rm - om).max() < TOL and np.abs(rs - os_).max() < TOL and np.abs(rl - ol).max() < TOL
            bm, _, _ = our_pred.predict(multimask_output=multimask, **kwargs)
            assert bm.dtype == bool and (bm == (om > 0)).all()
    # feeding the low-res logits back as mask_input
    _, _, rl = ref_pred.predict(pts, lbl, multimask_output=False)
    rm, _, _ = ref_pred.predict(pts, lbl, mask_input=rl, multimask_output=False, return_logits=True)
    om, _, _ = our_pred.predict(pts, lbl, mask_input=rl, multimask_output=False, return_logits=True)
    assert np.abs(rm - om).max() < TOL


def test_preprocessing_matches_reference_on_real_photos(shared_dir):
    sa = reference_sam()
    from segment_anything.utils.transforms import ResizeLongestSide as RefResize

    from clicksam.transforms import ResizeLongestSide

    paths = [shared_dir / "data/GrabCut/data_GT/124084.jpg", shared_dir / "data/DAVIS/img/bear_00000.jpg"]
    paths = [p for p in paths if p.exists()] or sorted((shared_dir / "data/Berkeley/images").glob("*.jpg"))[:2]
    for path in paths:
        image = read_image(path)
        ref, ours = RefResize(1024).apply_image(image), ResizeLongestSide(1024).apply_image(image)
        assert ref.shape == ours.shape and int(np.abs(ref.astype(int) - ours.astype(int)).max()) == 0
        coords = np.array([[0.0, 0.0], [image.shape[1] - 1, image.shape[0] - 1]])
        np.testing.assert_allclose(RefResize(1024).apply_coords(coords, image.shape[:2]), ResizeLongestSide(1024).apply_coords(coords, image.shape[:2]))


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_reference_state_dict_layout_matches(name):
    """Every key and shape of the reference builders' state dicts (no memory: meta tensors)."""
    sa = reference_sam()
    with torch.device("meta"):
        ref = sa.sam_model_registry[name]()
        ours = sam_from_config(get_config(name))
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert ref_shapes == our_shapes
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)


@pytest.mark.slow
def test_vit_b_file_from_reference_loads_and_matches(tmp_path):
    """A state dict saved from the reference vit_b builder loads strictly through build_sam,
    and the full-size encoder and decoder agree."""
    sa = reference_sam()
    torch.manual_seed(0)
    ref = sa.sam_model_registry["vit_b"]().eval()
    with torch.no_grad():
        for k, p in ref.state_dict().items():
            if "rel_pos" in k or "pos_embed" in k:
                p.copy_(torch.randn_like(p) * 0.02)
    path = tmp_path / "sam_vit_b_random.pth"
    torch.save(ref.state_dict(), path)
    ours = clicksam.build_sam("vit_b", checkpoint=path)
    torch.manual_seed(3)
    x = torch.rand(1, 3, 1024, 1024) * 255
    with torch.no_grad():
        ref_emb = ref.image_encoder(ref.preprocess(x))
        our_emb = ours.encode(ours.preprocess(x))
        assert _max_diff(ref_emb, our_emb) < TOL
        coords, labels = torch.tensor([[[200.0, 300.0]]]), torch.tensor([[1]])
        sparse, dense = ref.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        rm, ri = ref.mask_decoder(ref_emb, ref.prompt_encoder.get_dense_pe(), sparse, dense, True)
        out = ours.decode(our_emb, points=(coords, labels))
    assert _max_diff(rm, out.low_res_logits) < TOL and _max_diff(ri, out.iou_predictions) < TOL
