"""Stable-SAM in sessions and from a method file on the command line (the untrained identity,
combinations, undo/redo and the method-file round trip are in ``test_stage_contract.py``)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from clicksam import InteractiveSession, SamPredictor, build_sam
from clicksam.checkpoint import save_method_file
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


def test_cli_segment_with_a_stable_sam_method_file(tmp_path, capsys):
    from pathlib import Path

    from clicksam.cli import main

    torch.manual_seed(0)
    model = build_sam("tiny", methods=["stable-sam"])
    randomize(model.stable_sam, seed=12)
    method_file = save_method_file(tmp_path / "ssam.safetensors", model, ["stable_sam."], ["stable-sam"])
    photo = Path(__file__).resolve().parents[2] / "src" / "clicksam" / "examples" / "coffee.jpg"
    out = tmp_path / "mask.png"
    code = main(["segment", str(photo), "--model", "tiny", "--checkpoint", str(method_file), "--method", "stable-sam",
                 "--box", "100,80,400,350", "-o", str(out)])
    assert code == 0 and out.is_file()
    assert "pixels" in capsys.readouterr().out
