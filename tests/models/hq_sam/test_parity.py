"""Parity of clicksam's HQ-SAM with the reference ``segment_anything_hq`` package (its builders and
``SamPredictor``), on the same random weights, for a ViT and a TinyViT encoder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clicksam.models.hq_sam import HQ_SAM_UNUSED, get_hq_sam_config, hq_sam_from_config
from clicksam.models.official_files import split_ignored
from clicksam.transforms import ResizeLongestSide
from tests.reference_families import build_reference_sam_hq, randomize_, reference_sam_hq

TOL = 1e-4
POINTS = np.array([[120.0, 200.0], [300.0, 100.0], [455.5, 310.0]])
LABELS = np.array([1, 0, 1])
BOX = np.array([50.0, 40.0, 400.0, 300.0])


def _pair(name: str, seed: int = 1):
    ref = randomize_(build_reference_sam_hq(name), seed).eval()
    ours = hq_sam_from_config(get_hq_sam_config(name)).eval()
    state, _ = split_ignored(ref.state_dict(), HQ_SAM_UNUSED)
    ours.load_state_dict(state, strict=True)
    return ref, ours


def _set_image(name: str, image: np.ndarray):
    """(reference predictor with the image set, clicksam model, its features, input size)."""
    hq = reference_sam_hq()
    ref, ours = _pair(name)
    predictor = hq.SamPredictor(ref)
    predictor.set_image(image)
    resized = torch.as_tensor(ResizeLongestSide(ours.image_size).apply_image(image)).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        features = ours.encode_features(ours.preprocess(resized))
    return predictor, ours, features, tuple(resized.shape[-2:])


def _photo() -> np.ndarray:
    from clicksam.commands.demo import EXAMPLES
    from clicksam.images import read_image

    return read_image(EXAMPLES / "coffee.jpg")


@pytest.fixture(scope="module")
def setup():
    """The ViT test config: the whole prompt menu runs on it."""
    image = _photo()
    return (*_set_image("hq_tiny", image), image)


@pytest.fixture(scope="module")
def tinyvit_setup():
    """The TinyViT test config: same decoder code, so its encoder and two prompts are checked."""
    image = _photo()
    return (*_set_image("hq_tinyvit_test", image), image)


def _predict(ours, features, input_size, image_size, points=None, labels=None, box=None, mask_input=None, multimask=True, hq_token_only=False):
    transform = ResizeLongestSide(ours.image_size)
    with torch.no_grad():
        pts = None
        if points is not None:
            coords = torch.as_tensor(transform.apply_coords(points, image_size), dtype=torch.float)
            pts = (coords[None], torch.as_tensor(labels)[None])
        boxes = None if box is None else torch.as_tensor(transform.apply_boxes(box, image_size), dtype=torch.float)
        masks = None if mask_input is None else torch.as_tensor(mask_input)[None]
        out = ours.decode(features, points=pts, boxes=boxes, mask_input=masks, multimask_output=multimask, hq_token_only=hq_token_only)
        logits = ours.postprocess_masks(out.low_res_logits, input_size, image_size)
    return logits[0].numpy(), out.iou_predictions[0].numpy(), out.low_res_logits[0].numpy()


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


@pytest.mark.parametrize("which", ["setup", "tinyvit_setup"], ids=["vit", "tinyvit"])
def test_image_features_match(which, request):
    predictor, _, features, _, _ = request.getfixturevalue(which)
    assert _max_diff(predictor.features, features["embedding"]) < TOL
    early = predictor.interm_features[0].permute(0, 3, 1, 2)  # the early feature HQ-SAM's decoder reads
    assert early.shape == features["early_feature"].shape and _max_diff(early, features["early_feature"]) < TOL


PROMPTS = {
    "one click": dict(points=POINTS[:1], labels=LABELS[:1]),
    "clicks": dict(points=POINTS, labels=LABELS),
    "box": dict(box=BOX),
    "box and clicks": dict(points=POINTS, labels=LABELS, box=BOX),
}


# every prompt kind once, both output modes and both HQ outputs twice (the decoder code is shared)
CASES = [("one click", True, False), ("clicks", False, True), ("box", True, True), ("box and clicks", False, False)]


def _case_id(case) -> str:
    prompt, multimask, hq_only = case
    return f"{prompt}-{'multimask' if multimask else 'single'}-{'hq-only' if hq_only else 'sam+hq'}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_predictions_match_reference_predictor(setup, case):
    _check_prediction(setup, *case)


@pytest.mark.parametrize("case", [("box and clicks", True, False)], ids=_case_id)
def test_tinyvit_predictions_match_reference_predictor(tinyvit_setup, case):
    _check_prediction(tinyvit_setup, *case)


def _check_prediction(setup, prompt: str, multimask: bool, hq_token_only: bool) -> None:
    predictor, ours, features, input_size, image = setup
    kw = PROMPTS[prompt]
    rm, ri, rl = predictor.predict(
        point_coords=kw.get("points"), point_labels=kw.get("labels"), box=kw.get("box"),
        multimask_output=multimask, return_logits=True, hq_token_only=hq_token_only,
    )
    om, oi, ol = _predict(ours, features, input_size, image.shape[:2], multimask=multimask, hq_token_only=hq_token_only, **kw)
    assert rm.shape == om.shape == (1,) + image.shape[:2]  # HQ-SAM returns one mask either way
    assert _max_diff(rm, om) < TOL and _max_diff(ri, oi) < TOL and _max_diff(rl, ol) < TOL


def test_mask_input_matches_reference_predictor(setup):
    predictor, ours, features, input_size, image = setup
    _, _, previous = predictor.predict(POINTS[:2], LABELS[:2], multimask_output=False)
    rm, ri, rl = predictor.predict(POINTS, LABELS, mask_input=previous, multimask_output=False, return_logits=True)
    om, oi, ol = _predict(ours, features, input_size, image.shape[:2], POINTS, LABELS, mask_input=previous, multimask=False)
    assert _max_diff(rm, om) < TOL and _max_diff(ri, oi) < TOL and _max_diff(rl, ol) < TOL


def test_all_tokens_match_reference_decoder(setup):
    """The five masks (4 SAM tokens, then the HQ token) and SAM's four IoUs."""
    predictor, ours, features, _, image = setup
    ref = predictor.model
    transform = ResizeLongestSide(ours.image_size)
    coords = torch.as_tensor(transform.apply_coords(POINTS, image.shape[:2]), dtype=torch.float)[None]
    pts = (coords, torch.as_tensor(LABELS)[None])
    with torch.no_grad():
        sparse, dense = ref.prompt_encoder(points=pts, boxes=None, masks=None)
        vit = predictor.interm_features[0].permute(0, 3, 1, 2)
        hq = ref.mask_decoder.embedding_encoder(predictor.features) + ref.mask_decoder.compress_vit_feat(vit)
        masks, iou = ref.mask_decoder.predict_masks(predictor.features, ref.prompt_encoder.get_dense_pe(), sparse, dense, hq)
        out = ours.decode(features, points=pts)
    assert out.all_low_res_logits.shape == (1, 5, 256, 256) and out.mask_tokens.shape == (1, 5, 256)
    assert _max_diff(masks, out.all_low_res_logits) < TOL and _max_diff(iou, out.all_iou_predictions) < TOL


@pytest.mark.slow
def test_hq_vit_tiny_full_size_matches_reference():
    """The official Light HQ-SAM architecture end to end (random weights) on one image and one click."""
    image = (np.random.default_rng(0).random((300, 420, 3)) * 255).astype(np.uint8)
    predictor, ours, features, input_size = _set_image("hq_vit_tiny", image)
    assert _max_diff(predictor.features, features["embedding"]) < TOL
    rm, ri, rl = predictor.predict(POINTS[:1], LABELS[:1], multimask_output=True, return_logits=True)
    om, oi, ol = _predict(ours, features, input_size, image.shape[:2], POINTS[:1], LABELS[:1])
    assert _max_diff(rm, om) < TOL and _max_diff(ri, oi) < TOL and _max_diff(rl, ol) < TOL
