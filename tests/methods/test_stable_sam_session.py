"""Stable-SAM in sessions, method combinations and method files."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from clicksam import InteractiveSession, SamPredictor, build_sam
from clicksam.checkpoint import save_method_file
from clicksam.methods import attach_stage
from clicksam.methods.stable_sam import StableSamPlugin, StableSamStage, decoder_hooks
from tests.methods.test_stable_sam import randomize

H, W = 240, 320


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    img[60:180, 100:220] = (30, 200, 90)
    return img


@pytest.fixture(scope="module")
def predictor(image) -> SamPredictor:
    torch.manual_seed(0)
    p = SamPredictor(build_sam("tiny", methods=["stable-sam"]))
    p.set_image(image)
    return p


def session(predictor, method: str) -> InteractiveSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # untrained stages warn once
        return InteractiveSession(predictor, method=method, allow_untrained=True)


CLICKS = [(150, 120, True), (20, 20, False), (200, 160, True)]


def run_clicks(s: InteractiveSession) -> list[np.ndarray]:
    out = [s.add_click(x, y, positive).copy() for x, y, positive in CLICKS]
    out.append(s.logits.copy())
    return out


@pytest.mark.parametrize("method, reference", [
    ("stable-sam", "sam"),
    pytest.param("stable-sam+focsam", "focsam", marks=pytest.mark.slow),  # FocSAM's refiner: ~10 s a click on CPU
])
def test_untrained_stable_sam_session_equals_without(predictor, method, reference):
    """Undecided first click (multimask), then single-mask clicks with the previous logits."""
    if "focsam" in method:
        attach_stage(predictor.model, "focsam")
    plugged, plain = run_clicks(session(predictor, method)), run_clicks(session(predictor, reference))
    assert plugged[0].shape == (H, W) and plugged[0].dtype == bool
    for a, b in zip(plugged, plain):
        np.testing.assert_array_equal(a, b)


def test_session_warns_once_when_untrained(predictor):
    with pytest.warns(UserWarning, match="stable-sam"):
        InteractiveSession(predictor, method="stable-sam")


def test_trained_plugin_changes_the_session_and_undo_restores(image):
    torch.manual_seed(0)
    p = SamPredictor(build_sam("tiny", methods=["stable-sam"]))
    p.set_image(image)
    plain = run_clicks(session(p, "sam"))
    randomize(p.model.stable_sam, seed=4, scale=0.3)
    s = session(p, "stable-sam")
    plugged = run_clicks(s)
    assert np.abs(plugged[-1] - plain[-1]).max() > 1e-3
    s.undo()
    s.redo()
    np.testing.assert_array_equal(s.logits, plugged[-1])
    assert p.model.stable_sam.last_alpha is not None  # the stage ran the plugin


def test_stage_needs_the_plugin(tiny_model):
    with pytest.raises(RuntimeError, match="stable-sam"):
        StableSamStage(tiny_model, None)
    p = SamPredictor(tiny_model)
    p.set_image(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="stable-sam"):
        InteractiveSession(p, method="stable-sam")


@pytest.mark.slow
def test_all_three_methods_together(image):
    torch.manual_seed(0)
    p = SamPredictor(build_sam("tiny", methods=["stable-sam", "focsam", "sam-ref"]))
    p.set_image(image)
    out = run_clicks(session(p, "sam-ref+focsam+stable-sam"))
    assert out[0].shape == (H, W) and np.isfinite(out[-1]).all()
    ref = run_clicks(session(p, "focsam+sam-ref"))
    for a, b in zip(out, ref):
        np.testing.assert_array_equal(a, b)  # untrained Stable-SAM is the identity under both others


def test_method_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_sam("tiny", methods=["stable-sam"])
    randomize(model.stable_sam, seed=11)
    base = tmp_path / "tiny_base.pth"
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("stable_sam.")}, base)
    method_file = save_method_file(tmp_path / "stable_sam.safetensors", model, ["stable_sam."], ["stable-sam"],
                                   extra_metadata={"trained_with": "test"})
    loaded = build_sam("tiny", checkpoint=[base, method_file])
    assert isinstance(loaded.stable_sam, StableSamPlugin) and loaded.stable_sam.clicksam_trained
    own = model.stable_sam.state_dict()
    for key, value in loaded.stable_sam.state_dict().items():
        assert torch.equal(value, own[key]), key
    emb = torch.randn(1, 256, 64, 64)
    box = torch.tensor([[100.0, 200.0, 500.0, 800.0]])
    with torch.no_grad():
        a = model.decode(emb, boxes=box, multimask_output=False, hooks=decoder_hooks(model.stable_sam)).low_res_logits
        b = loaded.decode(emb, boxes=box, multimask_output=False, hooks=decoder_hooks(loaded.stable_sam)).low_res_logits
    assert torch.equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a trained stage does not warn
        p = SamPredictor(loaded)
        p.set_image(np.zeros((64, 64, 3), np.uint8))
        InteractiveSession(p, method="stable-sam")


def test_cli_segment_with_a_stable_sam_method_file(tmp_path, capsys):
    from pathlib import Path

    from clicksam.cli import main

    torch.manual_seed(0)
    model = build_sam("tiny", methods=["stable-sam"])
    randomize(model.stable_sam, seed=12)
    method_file = save_method_file(tmp_path / "ssam.safetensors", model, ["stable_sam."], ["stable-sam"])
    photo = Path(__file__).resolve().parents[2] / "examples" / "coffee.jpg"
    out = tmp_path / "mask.png"
    code = main(["segment", str(photo), "--model", "tiny", "--checkpoint", str(method_file), "--method", "stable-sam",
                 "--box", "100,80,400,350", "-o", str(out)])
    assert code == 0 and out.is_file()
    assert "pixels" in capsys.readouterr().out
