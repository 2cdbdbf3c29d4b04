"""SamPredictor on the SAM 2.1 and HQ-SAM families: the reference predictors' results through
clicksam's one road (``SAM2ImagePredictor`` with its ``normalize_coords`` and clamped low-res logits,
segment-anything-hq's ``SamPredictor`` with ``hq_token_only``), the whole feature bundle in the
embedding cache, and the family-specific refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import clicksam
from clicksam.cache import EmbeddingCache, feature_signature
from clicksam.models.official_files import split_ignored
from tests.reference_families import build_reference_sam2, build_reference_sam_hq, randomize_, reference_sam2, reference_sam_hq

TOL = 1e-4
POINTS = np.array([[120.0, 200.0], [300.0, 100.0], [455.5, 310.0]])
LABELS = np.array([1, 0, 1])
BOX = np.array([50.0, 40.0, 400.0, 300.0])


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def _same(ref: tuple, ours: tuple) -> None:
    for r, o in zip(ref, ours):
        assert np.shape(r) == np.shape(o) and _max_diff(r, o) < TOL


@pytest.fixture(scope="module")
def sam2_pair():
    """SAM2ImagePredictor and clicksam's SamPredictor on sam2_tiny, same weights, same photo."""
    reference_sam2()
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from clicksam.commands.demo import EXAMPLES
    from clicksam.models.sam2 import SAM2_VIDEO_ONLY

    ref = randomize_(build_reference_sam2("sam2_tiny"), 1).eval()
    model = clicksam.build_sam("sam2_tiny")
    model.load_state_dict(split_ignored(ref.state_dict(), SAM2_VIDEO_ONLY)[0], strict=True)
    image = clicksam.read_image(EXAMPLES / "coffee.jpg")
    theirs = SAM2ImagePredictor(ref)
    theirs.set_image(image)
    ours = clicksam.SamPredictor(model)
    ours.set_image(image)
    return theirs, ours, image


def test_sam2_predictor_matches_the_reference(sam2_pair):
    theirs, ours, image = sam2_pair
    assert ours.input_size == (1024, 1024) and ours.original_size == image.shape[:2]
    assert _max_diff(theirs._features["image_embed"], ours.features) < TOL
    for kw in (dict(point_coords=POINTS[:1], point_labels=LABELS[:1]),
               dict(point_coords=POINTS, point_labels=LABELS, box=BOX, multimask_output=False)):
        _same(theirs.predict(**kw, return_logits=True), ours.predict(**kw, return_logits=True))
    # the low-res logits come back clamped to ±32 and go in again as mask_input
    _, _, low = ours.predict(POINTS[:2], LABELS[:2], multimask_output=False)
    assert np.abs(low).max() <= 32.0
    kw = dict(point_coords=POINTS, point_labels=LABELS, mask_input=low, multimask_output=False, return_logits=True)
    _same(theirs.predict(**kw), ours.predict(**kw))
    # SAM 2's normalize_coords=False: coordinates already divided by (W, H)
    h, w = image.shape[:2]
    relative = dict(point_coords=POINTS / [w, h], point_labels=LABELS, box=BOX / [w, h, w, h],
                    normalize_coords=False, multimask_output=False, return_logits=True)
    _same(theirs.predict(**relative), ours.predict(**relative))
    _same(ours.predict(POINTS, LABELS, box=BOX, multimask_output=False, return_logits=True), ours.predict(**relative))


def test_sam2_session_steps_are_the_predictors(sam2_pair):
    _, ours, _ = sam2_pair
    session = clicksam.InteractiveSession(ours)
    session.add_click(*POINTS[0])
    masks, scores, low = ours.predict(POINTS[:1], LABELS[:1], return_logits=True)
    best = int(np.argmax(scores))
    np.testing.assert_allclose(session.logits, masks[best], atol=1e-5)  # one channel upsampled, not three
    session.add_click(*POINTS[1], positive=False)
    masks, _, _ = ours.predict(POINTS[:2], np.array([1, 0]), mask_input=low[best : best + 1], multimask_output=False,
                               return_logits=True)
    np.testing.assert_allclose(session.logits, masks[0], atol=1e-5)
    assert float(session.result.low_res_logits.abs().max()) <= 32.0


def test_hq_predictor_matches_the_reference():
    hq = reference_sam_hq()
    from clicksam.commands.demo import EXAMPLES
    from clicksam.models.hq_sam import HQ_SAM_UNUSED

    ref = randomize_(build_reference_sam_hq("hq_tiny"), 1).eval()
    model = clicksam.build_sam("hq_tiny")
    model.load_state_dict(split_ignored(ref.state_dict(), HQ_SAM_UNUSED)[0], strict=True)
    image = clicksam.read_image(EXAMPLES / "coffee.jpg")
    theirs = hq.SamPredictor(ref)
    theirs.set_image(image)
    ours = clicksam.SamPredictor(model)
    ours.set_image(image)
    for kw in (dict(point_coords=POINTS[:1], point_labels=LABELS[:1]),
               dict(point_coords=POINTS, point_labels=LABELS, box=BOX, multimask_output=False, hq_token_only=True)):
        ref_out, our_out = theirs.predict(**kw, return_logits=True), ours.predict(**kw, return_logits=True)
        assert our_out[0].shape == (1, *image.shape[:2])  # HQ-SAM returns one mask either way
        _same(ref_out, our_out)


def test_every_feature_level_is_cached_under_one_signature(tmp_path, photo):
    model = clicksam.build_sam("sam2_tiny")
    first = clicksam.SamPredictor(model, cache=EmbeddingCache(tmp_path))
    first.set_image(photo)
    entries = list(tmp_path.rglob("*.safetensors"))
    assert len(entries) == 1 and not first.last_encode_cached
    from safetensors import safe_open

    with safe_open(str(entries[0]), "pt") as f:
        assert sorted(f.keys()) == ["embedding", "high_res_s0", "high_res_s1"]
    again = clicksam.SamPredictor(model, cache=EmbeddingCache(tmp_path))  # a fresh process's memory
    again.set_image(photo)
    assert again.last_encode_cached and again.image_features.keys() == first.image_features.keys()
    assert all(torch.equal(again.image_features[k], first.image_features[k]) for k in first.image_features)
    a = first.predict(POINTS, LABELS, return_logits=True)
    b = again.predict(POINTS, LABELS, return_logits=True)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_the_signature_covers_sam2s_feature_parameters_outside_the_encoder():
    model = clicksam.build_sam("sam2_tiny")
    before = feature_signature(model)["weights"]
    changed = clicksam.build_sam("sam2_tiny")
    with torch.no_grad():
        changed.sam_mask_decoder.conv_s0.bias.add_(1.0)
    assert feature_signature(changed)["weights"] != before
    fine_tuned = clicksam.build_sam("sam2_tiny")
    with torch.no_grad():
        fine_tuned.sam_mask_decoder.iou_token.weight.add_(1.0)  # the decoder proper: not a feature
    assert feature_signature(fine_tuned)["weights"] == before


def test_bundles_round_trip_and_a_lone_embedding_is_refused(photo):
    for name in ("sam2_tiny", "hq_tiny"):
        model = clicksam.build_sam(name)
        source = clicksam.SamPredictor(model)
        source.set_image(photo)
        other = clicksam.SamPredictor(model)
        with pytest.raises(ValueError, match=r"decode from the feature bundle .* missing. Pass predictor.image_features"):
            other.set_image_embedding(source.get_image_embedding(), source.original_size)
        other.set_image_embedding(source.image_features, source.original_size)
        assert other.input_size == source.input_size
        a = source.predict(POINTS, LABELS, return_logits=True)[0]
        assert np.array_equal(a, other.predict(POINTS, LABELS, return_logits=True)[0])
        with pytest.raises(ValueError, match=f"reads the whole feature bundle .* of {type(model).__name__}.encode_features"):
            model.decode(source.features, multimask_output=False, boxes=torch.tensor([[0.0, 0.0, 100.0, 100.0]]))


def test_family_specific_options_and_attributes_are_refused_elsewhere(tiny_predictor, photo):
    with pytest.raises(ValueError, match=r"hq_token_only applies to HQ-SAM models; this is a sam model \(tiny\)"):
        tiny_predictor.predict(POINTS, LABELS, hq_token_only=True)
    sam2 = clicksam.SamPredictor(clicksam.build_sam("sam2_tiny"))
    with pytest.raises(AttributeError, match="sam2 models do not resize the longest side"):
        sam2.transform
    resized = sam2.transforms.resize_rgb(photo)
    assert resized.shape == (1024, 1024, 3)
    sam2.set_torch_image(torch.as_tensor(resized).permute(2, 0, 1)[None], photo.shape[:2])
    assert sam2.input_size == (1024, 1024) and sam2.image_features.keys() == {"embedding", "high_res_s0", "high_res_s1"}
