"""SAM-REF in the session: frames end to end, undo, gradients, non-default designs in method files
(the untrained identity, combinations and the default round trip are in ``test_stage_contract.py``)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from clicksam import InteractiveSession, SamPredictor, build_sam
from clicksam.checkpoint import read_method_file
from clicksam.methods.sam_ref import (SamRef, SamRefConfig, attach, attach_from_metadata,
                                      load_sam_ref_file, save_sam_ref_file)
from clicksam.methods.sam_ref.stage import STATE_ERROR_AREA, STATE_LOGITS, STATE_WINDOW
from tests.methods.test_sam_ref import set_disk_weights

H, W = 300, 200  # a portrait image: the resized frame is 1024×683, padded on the right


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    img[100:220, 60:150] = (230, 40, 40)
    return img


@pytest.fixture(scope="module")
def predictor(image) -> SamPredictor:
    torch.manual_seed(0)
    model = build_sam("tiny", methods=["sam-ref"])
    p = SamPredictor(model)
    p.set_image(image)
    return p


def session(predictor, method: str) -> InteractiveSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # untrained stages warn once
        return InteractiveSession(predictor, method=method, allow_untrained=True)


def randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))


def test_untrained_sam_ref_keeps_its_state(predictor):
    refined = session(predictor, "sam-ref")
    for x, y, positive in [(100, 150, True), (20, 30, False), (120, 200, True)]:
        refined.add_click(x, y, positive)
        state = refined.result.state
        assert state[STATE_LOGITS].shape == (1, 1, 1024, 1024)
        x0, y0, x1, y1 = state[STATE_WINDOW]
        assert 0 <= x0 < x1 <= 683 and 0 <= y0 < y1 <= 1024
        assert state[STATE_ERROR_AREA] == 0  # the untrained error map flags nothing


def test_click_pixels_end_to_end(predictor):
    model = predictor.model
    original = {k: v.clone() for k, v in model.sam_ref.state_dict().items()}
    try:
        set_disk_weights(model.sam_ref.gfr, gain=10.0)
        refined, plain = session(predictor, "sam-ref"), session(predictor, "sam")
        refined.add_click(50, 60)
        plain.add_click(50, 60)
        diff = refined.logits - plain.logits
        # the 5-px disk (1024 frame) is ~1.5 px here: the click's pixel gets the full gain,
        # pixels 10 px away (and the transposed position) nothing
        assert diff[60, 50] > 9.0
        assert abs(diff[60, 40]) < 1e-4 and abs(diff[70, 50]) < 1e-4
        assert abs(diff[50, 60]) < 1e-4
        assert refined.result.state[STATE_ERROR_AREA] == 1024 * 683
    finally:
        model.sam_ref.load_state_dict(original)


def test_undo_restores_the_previous_final_mask(predictor, monkeypatch):
    model = predictor.model
    original = {k: v.clone() for k, v in model.sam_ref.state_dict().items()}
    seen: list = []
    forward = SamRef.forward

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("previous_logits"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(SamRef, "forward", spy)
    try:
        randomize(model.sam_ref, seed=1)
        s = session(predictor, "sam-ref")
        s.add_click(100, 150)
        first = s.result.state[STATE_LOGITS]
        s.add_click(30, 40, positive=False)
        assert s.undo()
        assert s.result.state[STATE_LOGITS] is first
        s.add_click(120, 200)
        assert seen[0] is None
        assert torch.equal(seen[-1], first.float())
        third = s.result.state
        assert s.undo() and s.result.state[STATE_LOGITS] is first
        assert s.redo() and s.result.state is third
    finally:
        model.sam_ref.load_state_dict(original)


def test_an_embedding_without_the_image_is_refused(predictor):
    p = SamPredictor(predictor.model)
    p.set_image_embedding(predictor.features, predictor.original_size)
    s = session(p, "sam-ref")
    with pytest.raises(RuntimeError, match="set_image"):
        s.add_click(10, 10)


def test_gradients_only_in_the_refiner(predictor):
    model = predictor.model
    ref = SamRef(model.sam_ref.config)
    randomize(ref, seed=2)
    points = torch.tensor([[[300.0, 400.0], [100.0, 120.0]]])
    labels = torch.tensor([[1, 0]])
    with torch.no_grad():  # SAM frozen: the refiner's inputs carry no graph into SAM
        decoded = model.decode(predictor.features, (points, labels), multimask_output=False)
    out = ref(predictor.input_image, predictor.features, decoded.low_res_logits, points, labels,
              predictor.input_size)
    (out.logits.mean() + out.global_error.mean() + out.patch_error.mean()).backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("sam_ref."))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ref.parameters())


def test_a_non_default_design_travels_in_the_metadata(tmp_path):
    small = build_sam("tiny")
    attach(small, SamRefConfig(width=16, patch_width=16, num_blocks=2))
    randomize(small.sam_ref, seed=4)
    path = save_sam_ref_file(tmp_path / "small.safetensors", small)
    fresh = build_sam("tiny")
    load_sam_ref_file(fresh, path)
    assert fresh.sam_ref.config == small.sam_ref.config
    _, meta = read_method_file(path)
    other = build_sam("tiny")
    assert attach_from_metadata(other, meta).config == small.sam_ref.config
    for key, value in small.sam_ref.state_dict().items():
        assert torch.equal(fresh.sam_ref.state_dict()[key], value), key


def test_build_sam_loads_a_non_default_design_from_its_method_file(tmp_path):
    small = build_sam("tiny")
    attach(small, SamRefConfig(width=16, patch_width=16, num_blocks=2))
    randomize(small.sam_ref, seed=4)
    path = save_sam_ref_file(tmp_path / "small.safetensors", small)
    for methods in ((), ("sam-ref",)):  # with or without an untrained default stage first
        loaded = build_sam("tiny", checkpoint=[path], methods=methods)
        assert loaded.sam_ref.config == small.sam_ref.config and loaded.sam_ref.clicksam_trained
        for key, value in small.sam_ref.state_dict().items():
            assert torch.equal(loaded.sam_ref.state_dict()[key], value), key
