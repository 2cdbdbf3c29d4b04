"""InteractiveSession: clicks, boxes, undo/redo to any depth, several objects, mask_input feedback."""
from __future__ import annotations

import numpy as np
import pytest

import clicksam
from clicksam.session import InteractiveSession


def test_first_click_is_best_of_multimask_and_later_clicks_feed_logits_back(tiny_predictor):
    session = InteractiveSession(tiny_predictor)
    session.add_click(300, 200)
    masks, scores, low = tiny_predictor.predict(np.array([[300, 200]]), np.array([1]), return_logits=True)
    best = int(np.argmax(scores))
    assert np.allclose(session.logits, masks[best], atol=1e-5) and session.score == pytest.approx(scores[best], abs=1e-6)
    session.add_click(100, 300, positive=False)
    expected, _, _ = tiny_predictor.predict(
        np.array([[300, 200], [100, 300]]), np.array([1, 0]), mask_input=low[best : best + 1], multimask_output=False, return_logits=True
    )
    assert np.allclose(session.logits, expected[0], atol=1e-5)
    assert session.mask.shape == (400, 600) and session.mask.dtype == bool
    assert session.last_latency_s > 0


def test_undo_redo_to_any_depth(tiny_predictor):
    session = InteractiveSession(tiny_predictor)
    assert not session.undo() and not session.mask.any() and session.logits is None
    points = [(300, 200, True), (100, 300, False), (500, 100, True), (50, 50, False)]
    snapshots = []
    for x, y, p in points:
        session.add_click(x, y, p)
        snapshots.append(session.logits.copy())
    for i in range(3, 0, -1):
        assert session.undo()
        assert np.array_equal(session.logits, snapshots[i - 1]) and len(session.clicks) == i
    assert session.undo() and session.clicks == () and not session.undo()
    for i in range(4):
        assert session.redo() and np.array_equal(session.logits, snapshots[i])
    assert not session.redo()
    session.undo()
    session.undo()
    session.add_click(200, 250)  # a new branch drops the redo steps
    assert not session.can_redo and len(session.clicks) == 3


def test_box_then_clicks_and_reset(tiny_predictor):
    session = InteractiveSession(tiny_predictor)
    session.add_box(50, 40, 400, 300)
    assert session.box == (50.0, 40.0, 400.0, 300.0) and session.clicks == ()
    session.add_click(200, 150)
    assert session.box is not None and len(session.clicks) == 1
    session.reset()
    assert session.clicks == () and session.box is None and not session.can_undo


def test_objects_have_their_own_history(tiny_predictor):
    session = InteractiveSession(tiny_predictor)
    session.add_click(300, 200)
    first = session.mask.copy()
    assert session.new_object("spoon") == 1
    assert session.clicks == () and not session.mask.any()
    session.add_click(50, 50)
    session.select_object(0)
    assert np.array_equal(session.mask, first) and len(session.objects) == 2
    assert session.objects[1].label == "spoon"
    with pytest.raises(ValueError, match="object index 5 out of range"):
        session.select_object(5)


def test_session_errors(tiny_model, tiny_predictor):
    with pytest.raises(RuntimeError, match="no image is set"):
        InteractiveSession(clicksam.SamPredictor(tiny_model)).add_click(1, 1)
    session = InteractiveSession(tiny_predictor)
    with pytest.raises(ValueError, match="outside the 600x400"):
        session.add_click(-1, 5)
    with pytest.raises(ValueError, match="NaN"):
        session.add_click(float("nan"), 5)
    with pytest.raises(ValueError, match="positive must be True or False"):
        session.add_click(5, 5, positive="yes")
    with pytest.raises(ValueError, match="x1 < x0"):
        session.add_box(100, 10, 50, 20)
    with pytest.raises(ValueError, match="unknown method stage"):
        InteractiveSession(tiny_predictor, method="sam+magic")


def test_results_keep_no_image_size_arrays_and_their_own_image_size(tiny_model):
    """A step keeps low-res logits and stage state only; its mask is computed on demand, for the image
    it was made on even after the predictor moved to another image."""
    import dataclasses

    import torch

    predictor = clicksam.SamPredictor(tiny_model)
    predictor.set_image(np.random.default_rng(0).integers(0, 255, (300, 500, 3), dtype=np.uint8))
    session = InteractiveSession(predictor)
    session.add_click(100, 120)
    session.add_click(300, 200, positive=False)
    result = session.result
    for value in dataclasses.asdict(result).values():
        assert not isinstance(value, np.ndarray)
        assert not isinstance(value, torch.Tensor) or value.numel() <= 256 * 256
    before = session.mask.copy()
    predictor.set_image(np.zeros((64, 80, 3), np.uint8))
    assert np.array_equal(result.mask, before) and result.logits.shape == (300, 500)
