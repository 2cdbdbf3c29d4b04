"""The stage contract, one menu run over every registered method (kornia's fixed test menu is the
model): untrained identity or refusal as the spec declares, the missing-stage and missing-weights
messages, undo/redo restoring the stage state exactly, the method-file round trip, and every
combination with the other methods.

The model is the ``tiny`` SAM at a 256-pixel frame (a 16×16 embedding grid), so that even FocSAM's
12-block refiner runs in a fraction of a second; the stages follow the model's frame.
"""
from __future__ import annotations

import dataclasses
import importlib
import itertools
import pkgutil
import re
import types
import warnings
import zlib

import numpy as np
import pytest
import torch

import clicksam.methods
from clicksam import InteractiveSession, SamPredictor
from clicksam.build import sam_from_config
from clicksam.checkpoint import load_method_file, save_method_file
from clicksam.eval.sam_segmenter import SamSegmenter
from clicksam.interaction import Stage
from clicksam.methods import (UNTRAINED_IDENTITY, attach_stage, get_spec, is_trained, list_methods, parse_method,
                              resolve)
from clicksam.pipeline import Pipeline
from clicksam.registry import get_config
from clicksam.server.backend import method_options_for

NAMES = list_methods()
WITH_MODULE = [n for n in NAMES if get_spec(n).attribute]
COMBINATIONS = ["+".join(c) for size in range(2, len(NAMES) + 1) for c in itertools.combinations(NAMES, size)]
H, W = 96, 128
CLICKS = [(60.0, 50.0, True), (10.0, 12.0, False), (90.0, 70.0, True)]
BOX = (30.0, 20.0, 110.0, 80.0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    img[30:80, 40:100] = (220, 60, 40)
    return img


def small_model(names=(), trained=()) -> torch.nn.Module:
    """The seeded tiny SAM at a 256 frame with the methods ``names`` attached; the modules of
    ``trained`` get seeded random changes and count as trained."""
    torch.manual_seed(0)
    model = sam_from_config(dataclasses.replace(get_config("tiny"), image_size=256)).eval()
    for name in names:
        attach_stage(model, name)
    for name in trained:
        module = model._modules[get_spec(name).attribute]
        gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        with torch.no_grad():
            for param in module.parameters():
                param.add_(0.05 * torch.randn(param.shape, generator=gen))
        module.clicksam_trained = True
    return model


def predictor_for(model, image) -> SamPredictor:
    predictor = SamPredictor(model)
    predictor.set_image(image)
    return predictor


def session(predictor, method: str) -> InteractiveSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # untrained stages warn once
        return InteractiveSession(predictor, method=method, allow_untrained=True)


def run(s: InteractiveSession) -> list[np.ndarray]:
    """Three clicks, then a box: each step's logits at the image size."""
    out = []
    for x, y, positive in CLICKS:
        mask = s.add_click(x, y, positive)
        assert mask.shape == (H, W) and mask.dtype == bool and np.isfinite(s.logits).all()
        np.testing.assert_array_equal(mask, s.logits > 0)
        out.append(s.logits.copy())
    s.add_box(*BOX)
    out.append(s.logits.copy())
    return out


def assert_same_runs(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    for step, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_array_equal(x, y, err_msg=f"step {step}")


def assert_same_state(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b[key]), key
        else:
            assert value == b[key], key


# -- the spec itself -------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_spec_parts_resolve(name):
    spec = get_spec(name)
    assert issubclass(resolve(spec.stage), Stage)
    assert parse_method(f"sam+{name}") == [name]
    for part in (spec.attach, spec.attach_from_metadata, spec.file_metadata):
        assert part is None or callable(resolve(part))
    if spec.training is not None:
        from clicksam.train.method import TrainMethod
        from clicksam.training.methods import get_method

        assert issubclass(resolve(spec.training), TrainMethod) and get_method(name) is resolve(spec.training)
    for fmt in spec.checkpoint_formats:
        assert callable(resolve(fmt.recognise)) and callable(resolve(fmt.convert))
        assert resolve(fmt.recognise)({"state_dict": {}}) is False


def test_method_packages_export_what_they_name():
    """Every built-in method package: one SPEC, and each public name resolves (lazily) to an
    object, never to a same-named submodule."""
    for info in pkgutil.iter_modules(clicksam.methods.__path__):
        if not info.ispkg:
            continue
        package = importlib.import_module(f"clicksam.methods.{info.name}")
        assert package.SPEC is get_spec(package.SPEC.name)
        for public in package.__all__:
            assert not isinstance(getattr(package, public), types.ModuleType), f"{info.name}.{public}"


# -- untrained: identity or refused ---------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_untrained_stage_is_the_identity_or_refused(name, image):
    spec = get_spec(name)
    model = small_model([name])
    predictor = predictor_for(model, image)
    option = {o.name: o for o in method_options_for(model)}[name]
    if not spec.attribute:  # no module, nothing to train
        assert option.available
        run(InteractiveSession(predictor, method=name))
        return
    if spec.untrained == UNTRAINED_IDENTITY:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            plugged = InteractiveSession(predictor, method=name)
        assert len([w for w in caught if repr(name) in str(w.message)]) == 1
        assert_same_runs(run(plugged), run(session(predictor, "sam")))
        assert option.available
        return
    for build in (lambda: InteractiveSession(predictor, method=name), lambda: SamSegmenter(predictor, name),
                  lambda: Pipeline(predictor, f"sam+{name}")):
        with pytest.raises(ValueError) as refused:
            build()
        message = str(refused.value)
        assert "no trained weights" in message and spec.weights_hint in message and "allow_untrained=True" in message
    assert not option.available and spec.weights_hint in option.reason
    run(session(predictor, name))  # tests opt in explicitly


@pytest.mark.parametrize("name", WITH_MODULE)
def test_a_missing_stage_says_how_to_attach_it(name, image):
    predictor = predictor_for(small_model(), image)
    with pytest.raises(ValueError, match=re.escape(f"build_sam(..., methods=[{name!r}])")):
        InteractiveSession(predictor, method=name, allow_untrained=True)
    option = {o.name: o for o in method_options_for(predictor.model)}[name]
    assert not option.available and "not loaded" in option.reason


# -- state, files, combinations ----------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_undo_redo_restore_the_stage_state_exactly(name, image):
    trained = [name] if get_spec(name).attribute else []
    predictor = predictor_for(small_model([name], trained), image)
    s = session(predictor, name)
    results = []
    for x, y, positive in CLICKS:
        s.add_click(x, y, positive)
        results.append(s.result)
    assert s.undo() and s.undo() and s.result is results[0]
    assert s.redo() and s.result is results[1] and s.redo() and s.result is results[2]
    # from the restored first step, the same clicks give the same steps again, bit for bit
    assert s.undo() and s.undo()
    for (x, y, positive), before in zip(CLICKS[1:], results[1:]):
        s.add_click(x, y, positive)
        np.testing.assert_array_equal(s.logits, before.logits)
        assert torch.equal(s.result.low_res_logits, before.low_res_logits)
        assert_same_state(s.result.state, before.state)
    assert not s.can_redo


@pytest.mark.parametrize("name", WITH_MODULE)
def test_method_file_round_trip(name, image, tmp_path):
    spec = get_spec(name)
    model = small_model([name], trained=[name])
    path = save_method_file(tmp_path / f"{spec.attribute}.safetensors", model, [spec.attribute + "."], [name])
    fresh = small_model()
    meta = load_method_file(fresh, path)
    assert meta["methods"] == [name]
    loaded, own = fresh._modules[spec.attribute], model._modules[spec.attribute]
    assert is_trained(loaded) and type(loaded) is type(own)
    assert loaded.state_dict().keys() == own.state_dict().keys()
    assert all(torch.equal(value, own.state_dict()[key]) for key, value in loaded.state_dict().items())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a trained stage does not warn
        a = run(InteractiveSession(predictor_for(model, image), method=name))
        b = run(InteractiveSession(predictor_for(fresh, image), method=name))
    assert_same_runs(a, b)


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_every_combination(combination, image):
    names = parse_method(combination)
    identity = [n for n in names if get_spec(n).attribute and get_spec(n).untrained == UNTRAINED_IDENTITY]
    others = [n for n in names if n not in identity]
    # identity stages untrained, the others' modules with (random) trained weights
    predictor = predictor_for(small_model(names, trained=[n for n in others if get_spec(n).attribute]), image)
    combined = run(session(predictor, combination))
    assert_same_runs(combined, run(session(predictor, "+".join(reversed(names)))))  # any spelling, one order
    # untrained identity stages change nothing, whatever they are combined with
    assert_same_runs(combined, run(session(predictor, "+".join(others) or "sam")))
