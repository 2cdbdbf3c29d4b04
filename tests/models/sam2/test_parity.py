"""Parity of clicksam's SAM 2 with the reference ``sam2`` package (its ``build_sam2`` and
``SAM2ImagePredictor``), on the same random weights built by the reference itself."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clicksam.models.official_files import split_ignored
from clicksam.models.sam2 import SAM2_VIDEO_ONLY, Sam2Transforms, get_sam2_config, sam2_from_config
from tests.reference_families import build_reference_sam2, randomize_, reference_sam2

TOL = 1e-4
POINTS = np.array([[120.0, 200.0], [300.0, 100.0], [455.5, 310.0]])
LABELS = np.array([1, 0, 1])
BOX = np.array([50.0, 40.0, 400.0, 300.0])


def _pair(name: str, seed: int = 1):
    """(reference SAM2Base, clicksam Sam2) with the same random weights."""
    ref = randomize_(build_reference_sam2(name), seed).eval()
    ours = sam2_from_config(get_sam2_config(name)).eval()
    state, _ = split_ignored(ref.state_dict(), SAM2_VIDEO_ONLY)
    ours.load_state_dict(state, strict=True)
    return ref, ours


@pytest.fixture(scope="module")
def tiny():
    """The pair, a reference predictor and clicksam's features, both set on the example photo."""
    reference_sam2()
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from clicksam.commands.demo import EXAMPLES
    from clicksam.images import read_image

    ref, ours = _pair("sam2_tiny")
    image = read_image(EXAMPLES / "coffee.jpg")
    predictor = SAM2ImagePredictor(ref)
    predictor.set_image(image)
    transforms = Sam2Transforms(ours.image_size)
    with torch.no_grad():
        features = ours.encode_features(transforms.image_to_input(image)[0])
    return ref, ours, predictor, transforms, features, image


def _predict(ours, transforms, features, size, points=None, labels=None, box=None, mask_input=None, multimask=True, normalized=False):
    """What a predictor does with clicksam's parts: prompts to the model frame, decode, masks
    upsampled from the unclamped logits, low-res logits clamped. Returns numpy (logits C×H×W,
    IoU C, low-res C×256×256)."""
    with torch.no_grad():
        pts = None
        if points is not None:
            pts = (torch.as_tensor(transforms.apply_coords(points, size, normalized))[None], torch.as_tensor(labels)[None])
        boxes = None if box is None else torch.as_tensor(transforms.apply_boxes(box, size, normalized))
        masks = None if mask_input is None else torch.as_tensor(mask_input)[None]
        out = ours.decode(features, points=pts, boxes=boxes, mask_input=masks, multimask_output=multimask)
        logits = transforms.postprocess_masks(out.low_res_logits, transforms.input_size(size), size)
        low_res = transforms.output_low_res(out.low_res_logits)
    return logits[0].numpy(), out.iou_predictions[0].numpy(), low_res[0].numpy()


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def test_preprocessing_matches_reference_transforms(tiny):
    _, _, predictor, transforms, _, image = tiny
    ref = predictor._transforms(image)[None]
    ours, _ = transforms.image_to_input(image)
    assert ref.shape == ours.shape == (1, 3, 1024, 1024)
    assert _max_diff(ref, ours) < 1e-6


def test_image_features_match(tiny):
    _, _, predictor, _, features, _ = tiny
    assert _max_diff(predictor._features["image_embed"], features["embedding"]) < TOL
    s0, s1 = predictor._features["high_res_feats"]
    assert s0.shape == features["high_res_s0"].shape == (1, 32, 256, 256)
    assert s1.shape == features["high_res_s1"].shape == (1, 64, 128, 128)
    assert _max_diff(s0, features["high_res_s0"]) < TOL and _max_diff(s1, features["high_res_s1"]) < TOL


PROMPTS = {
    "one click": dict(points=POINTS[:1], labels=LABELS[:1]),
    "clicks": dict(points=POINTS, labels=LABELS),
    "box": dict(box=BOX),
    "box and clicks": dict(points=POINTS, labels=LABELS, box=BOX),
}


# every prompt kind once and both output modes twice (the decoder code is shared by all of them)
CASES = [("one click", True), ("clicks", False), ("box", True), ("box and clicks", False)]


@pytest.mark.parametrize("prompt,multimask", CASES, ids=[f"{p}-{'multimask' if m else 'single'}" for p, m in CASES])
def test_predictions_match_reference_predictor(tiny, prompt, multimask):
    _, ours, predictor, transforms, features, image = tiny
    kw = PROMPTS[prompt]
    rm, ri, rl = predictor.predict(
        point_coords=kw.get("points"), point_labels=kw.get("labels"), box=kw.get("box"),
        multimask_output=multimask, return_logits=True,
    )
    om, oi, ol = _predict(ours, transforms, features, image.shape[:2], multimask=multimask, **kw)
    assert rm.shape == om.shape == ((3 if multimask else 1),) + image.shape[:2]
    assert _max_diff(rm, om) < TOL and _max_diff(ri, oi) < TOL and _max_diff(rl, ol) < TOL


def test_mask_input_matches_reference_predictor(tiny):
    _, ours, predictor, transforms, features, image = tiny
    _, _, previous = predictor.predict(POINTS[:2], LABELS[:2], multimask_output=False)
    rm, ri, rl = predictor.predict(POINTS, LABELS, mask_input=previous, multimask_output=False, return_logits=True)
    om, oi, ol = _predict(ours, transforms, features, image.shape[:2], POINTS, LABELS, mask_input=previous, multimask=False)
    assert _max_diff(rm, om) < TOL and _max_diff(ri, oi) < TOL and _max_diff(rl, ol) < TOL


def test_normalized_coordinates_match_reference(tiny):
    """SAM 2's ``normalize_coords=False`` habit: coordinates already divided by (W, H)."""
    _, ours, predictor, transforms, features, image = tiny
    h, w = image.shape[:2]
    points, box = POINTS / [w, h], BOX / [w, h, w, h]
    rm, ri, _ = predictor.predict(points, LABELS, box=box, normalize_coords=False, return_logits=True)
    om, oi, _ = _predict(ours, transforms, features, (h, w), points, LABELS, box=box, normalized=True)
    assert _max_diff(rm, om) < TOL and _max_diff(ri, oi) < TOL


def test_batched_prompts_share_one_image(tiny):
    """B prompt sets on one image (the reference repeats the image per prompt)."""
    _, ours, predictor, transforms, features, image = tiny
    size = image.shape[:2]
    coords = np.stack([POINTS[:2], POINTS[1:]])  # 2×2×2
    labels = np.stack([LABELS[:2], LABELS[1:]])
    rm, ri, _ = predictor.predict(coords, labels, multimask_output=True, return_logits=True)
    with torch.no_grad():
        pts = (torch.as_tensor(transforms.apply_coords(coords, size)), torch.as_tensor(labels))
        out = ours.decode(features, points=pts, multimask_output=True)
        om = transforms.postprocess_masks(out.low_res_logits, transforms.input_size(size), size)
    assert rm.shape == om.shape == (2, 3) + size
    assert _max_diff(rm, om) < TOL and _max_diff(ri, out.iou_predictions) < TOL


def test_decoder_tokens_and_object_score_match(tiny):
    ref, ours, predictor, transforms, features, image = tiny
    pts = (torch.as_tensor(transforms.apply_coords(POINTS, image.shape[:2]))[None], torch.as_tensor(LABELS)[None])
    with torch.no_grad():
        sparse, dense = ref.sam_prompt_encoder(points=pts, boxes=None, masks=None)
        high_res = [f for f in predictor._features["high_res_feats"]]
        masks, iou, tokens, scores = ref.sam_mask_decoder.predict_masks(
            predictor._features["image_embed"], ref.sam_prompt_encoder.get_dense_pe(), sparse, dense,
            repeat_image=False, high_res_features=high_res,
        )
        out = ours.decode(features, points=pts, multimask_output=True)
    assert _max_diff(masks, out.all_low_res_logits) < TOL and _max_diff(iou, out.all_iou_predictions) < TOL
    assert out.mask_tokens.shape == (1, 4, 256) and _max_diff(tokens, out.mask_tokens) < TOL
    assert _max_diff(scores, out.object_score_logits) < TOL
    assert ((out.all_iou_predictions >= 0) & (out.all_iou_predictions <= 1)).all()  # the sigmoid IoU head


def test_stability_fallback_matches_reference(tiny):
    """Token 0's mask is replaced by the best multimask output when it is unstable, as in sam2."""
    ref, ours, *_ = tiny
    torch.manual_seed(3)
    logits = torch.randn(6, 4, 256, 256) * 5
    logits[:3, 0] = logits[:3, 0].sign() * 10  # stable single masks (no logit near 0)
    logits[3:, 0] = torch.randn(3, 256, 256) * 0.04  # unstable: every logit within ±0.05
    iou = torch.rand(6, 4)
    expected_masks, expected_iou = ref.sam_mask_decoder._dynamic_multimask_via_stability(logits, iou)
    masks, scores = ours.mask_decoder.select_outputs(logits, iou, multimask_output=False)
    assert torch.equal(masks, expected_masks) and torch.equal(scores, expected_iou)
    assert torch.equal(masks[:3], logits[:3, :1])
    best = iou[3:, 1:].argmax(1) + 1
    assert torch.equal(masks[3:, 0], logits[3:][torch.arange(3), best])


def test_low_res_logits_clamped_after_the_masks_are_made(tiny):
    """Large logits: the image-size masks come from the unclamped logits, the low-res ones handed
    back are clamped to ±32, as SAM2ImagePredictor does."""
    ref, ours, predictor, transforms, features, image = tiny
    with torch.no_grad():
        for model in (ref, ours):
            for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
                mlp.layers[-1].weight.mul_(200.0)
    try:
        rm, ri, rl = predictor.predict(POINTS, LABELS, multimask_output=True, return_logits=True)
        om, oi, ol = _predict(ours, transforms, features, image.shape[:2], POINTS, LABELS)
        assert np.abs(rm).max() > 40 and np.abs(rl).max() == pytest.approx(32.0)
        # logits ~200x larger than elsewhere: the tolerance is relative to the largest one (SPEC §9)
        scale = float(np.abs(rm).max())
        assert _max_diff(rm, om) < TOL * scale and _max_diff(rl, ol) < TOL * scale
    finally:
        with torch.no_grad():
            for model in (ref, ours):
                for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
                    mlp.layers[-1].weight.div_(200.0)


@pytest.mark.slow
def test_hiera_t_full_size_matches_reference():
    """The official hiera_t architecture end to end (random weights) on one image and one click."""
    reference_sam2()
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    ref, ours = _pair("sam2.1_hiera_t", seed=5)
    image = (np.random.default_rng(0).random((300, 420, 3)) * 255).astype(np.uint8)
    predictor = SAM2ImagePredictor(ref)
    predictor.set_image(image)
    transforms = Sam2Transforms()
    with torch.no_grad():
        features = ours.encode_features(transforms.image_to_input(image)[0])
    assert _max_diff(predictor._features["image_embed"], features["embedding"]) < TOL
    rm, ri, rl = predictor.predict(POINTS[:1], LABELS[:1], multimask_output=True, return_logits=True)
    om, oi, ol = _predict(ours, transforms, features, image.shape[:2], POINTS[:1], LABELS[:1])
    assert _max_diff(rm, om) < TOL and _max_diff(ri, oi) < TOL and _max_diff(rl, ol) < TOL
