"""FocSamStage in a session: plain decode at click 1, refocus once at click 2, F_r after, undo."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from clicksam import InteractiveSession, SamPredictor, build_sam
from clicksam.methods.focsam import FocusRefiner
from clicksam.methods.focsam.stage import STATE_EMBEDDING


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    model = build_sam("tiny", methods=["focsam"])
    assert isinstance(model.focus_refiner, FocusRefiner) and not model.focus_refiner.training
    # one block instead of twelve keeps the test fast; the stage logic does not depend on depth
    model.focus_refiner = FocusRefiner(depth=1).eval()
    predictor = SamPredictor(model)
    predictor.set_image_embedding(torch.randn(1, 256, 64, 64), original_size=(300, 400))
    return predictor


def _session(predictor) -> InteractiveSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained-stage warning
        return InteractiveSession(predictor, method="focsam", allow_untrained=True)


def _decode(model, embedding, predictor, clicks, mask_input):
    coords = predictor.transform.apply_coords(np.array([[x, y] for x, y, _ in clicks], np.float32),
                                              predictor.original_size)
    labels = torch.tensor([[1.0 if p else 0.0 for _, _, p in clicks]])
    return model.decode(embedding, points=(torch.from_numpy(coords)[None], labels), mask_input=mask_input,
                        multimask_output=False)


def test_refocus_happens_once_at_the_second_click(predictor):
    model, features = predictor.model, predictor.features
    calls = []
    hook = model.focus_refiner.register_forward_hook(lambda *args: calls.append(1))
    try:
        session = _session(predictor)
        clicks = [(120.0, 80.0, True), (200.0, 150.0, False), (260.0, 90.0, True)]

        session.add_click(*clicks[0][:2], positive=clicks[0][2])
        first = session.result
        with torch.no_grad():
            plain = _decode(model, features, predictor, clicks[:1], None)
        torch.testing.assert_close(first.low_res_logits, plain.low_res_logits)  # single-mask token on F
        assert STATE_EMBEDDING not in first.state and not calls

        session.add_click(*clicks[1][:2], positive=clicks[1][2])
        second = session.result
        assert len(calls) == 1
        calls.clear()
        with torch.no_grad():
            coarse = _decode(model, features, predictor, clicks[:2], first.low_res_logits)
            refined = model.focus_refiner(features, coarse.low_res_logits, coarse.mask_tokens[:, :1])
            want = _decode(model, refined, predictor, clicks[:2], first.low_res_logits)
        torch.testing.assert_close(second.state[STATE_EMBEDDING], refined)
        torch.testing.assert_close(second.low_res_logits, want.low_res_logits)
        assert not torch.allclose(refined, features)
        calls[:] = [1]

        session.add_click(*clicks[2][:2], positive=clicks[2][2])
        third = session.result
        assert len(calls) == 1 and third.state[STATE_EMBEDDING] is second.state[STATE_EMBEDDING]
        with torch.no_grad():
            want3 = _decode(model, refined, predictor, clicks, second.low_res_logits)
        torch.testing.assert_close(third.low_res_logits, want3.low_res_logits)

        # undo back to click 1 drops F_r; redo restores it without recomputing
        session.undo()
        session.undo()
        assert STATE_EMBEDDING not in session.result.state
        session.redo()
        assert session.result.state[STATE_EMBEDDING] is second.state[STATE_EMBEDDING] and len(calls) == 1
        # a different second click after undo refocuses again
        session.undo()
        session.add_click(50.0, 250.0, positive=False)
        assert len(calls) == 2 and STATE_EMBEDDING in session.result.state
    finally:
        hook.remove()


def test_a_new_embedding_is_never_decoded_with_a_stale_refocus(predictor):
    session = _session(predictor)
    session.add_click(100.0, 100.0)
    session.add_click(300.0, 200.0, positive=False)
    old = session.result.state[STATE_EMBEDDING]
    predictor.features = predictor.features.clone()  # as if the image had been re-encoded
    session.add_click(150.0, 120.0)
    assert session.result.state[STATE_EMBEDDING] is not old

