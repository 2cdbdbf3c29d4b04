"""The stage contract, one menu run over every registered method (kornia's fixed test menu is the
model): untrained identity or refusal as the spec declares, the missing-stage and missing-weights
messages, undo/redo restoring the stage state exactly, the method-file round trip, and every
combination with the other methods.

The model is the ``tiny`` SAM at a 256-pixel frame (a 16×16 embedding grid), so that even FocSAM's
12-block refiner runs in a fraction of a second; the stages follow the model's frame. Every pair of
a method and another model family its spec declares (``MethodSpec.families``) runs the same menu on
that family's test config (``sam2_tiny``, ``hq_tiny``), with the full combination once per family;
a pair a spec does not declare is refused wherever a step is built.
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
import clicksam
from clicksam import InteractiveSession, SamPredictor
from clicksam.checkpoint import load_method_file, save_method_file
from clicksam.eval.sam_segmenter import SamSegmenter
from clicksam.interaction import Stage
from clicksam.methods import (UNTRAINED_IDENTITY, attach_stage, get_spec, is_trained, list_methods, parse_method,
                              resolve)
from clicksam.lazy import resolve as resolve_family_part
from clicksam.pipeline import Pipeline
from clicksam.registry import get_config, get_family
from clicksam.server.backend import method_options_for

NAMES = list_methods()
WITH_MODULE = [n for n in NAMES if get_spec(n).attribute]
COMBINATIONS = ["+".join(c) for size in range(2, len(NAMES) + 1) for c in itertools.combinations(NAMES, size)]
# the test config of each model family; SAM's menu runs on "tiny", the others' on the pairs declared
FAMILY_MODELS = {"sam": "tiny", "sam2": "sam2_tiny", "hq-sam": "hq_tiny"}
OTHER_FAMILIES = [f for f in FAMILY_MODELS if f != "sam"]
PAIRS = [pytest.param(n, FAMILY_MODELS[f], id=f"{n}-{f}") for f in FAMILY_MODELS for n in NAMES if f in get_spec(n).families]
PAIRS_WITH_MODULE = [p for p in PAIRS if get_spec(p.values[0]).attribute]
FAMILY_COMBINATIONS = [pytest.param("+".join(n for n in NAMES if f in get_spec(n).families), FAMILY_MODELS[f], id=f)
                       for f in OTHER_FAMILIES if sum(f in get_spec(n).families for n in NAMES) > 1]
H, W = 96, 128
CLICKS = [(60.0, 50.0, True), (10.0, 12.0, False), (90.0, 70.0, True)]
BOX = (30.0, 20.0, 110.0, 80.0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    img[30:80, 40:100] = (220, 60, 40)
    return img


def small_model(names=(), trained=(), model_name="tiny") -> torch.nn.Module:
    """The seeded test model ``model_name`` (any family) at a 256 frame with the methods ``names``
    attached; the modules of ``trained`` get seeded random changes and count as trained."""
    torch.manual_seed(0)
    config = dataclasses.replace(get_config(model_name), image_size=256)
    model = resolve_family_part(get_family(config.family).build)(config).eval()
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
@pytest.mark.parametrize("name,model_name", PAIRS)
def test_untrained_stage_is_the_identity_or_refused(name, model_name, image):
    spec = get_spec(name)
    model = small_model([name], model_name=model_name)
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
@pytest.mark.parametrize("name,model_name", PAIRS)
def test_undo_redo_restore_the_stage_state_exactly(name, model_name, image):
    trained = [name] if get_spec(name).attribute else []
    predictor = predictor_for(small_model([name], trained, model_name), image)
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


@pytest.mark.parametrize("name,model_name", PAIRS_WITH_MODULE)
def test_method_file_round_trip(name, model_name, image, tmp_path):
    spec = get_spec(name)
    model = small_model([name], trained=[name], model_name=model_name)
    path = save_method_file(tmp_path / f"{spec.attribute}.safetensors", model, [spec.attribute + "."], [name])
    fresh = small_model(model_name=model_name)
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


@pytest.mark.parametrize("combination,model_name",
                         [pytest.param(c, "tiny", id=c) for c in COMBINATIONS] + FAMILY_COMBINATIONS)
def test_every_combination(combination, model_name, image):
    names = parse_method(combination)
    identity = [n for n in names if get_spec(n).attribute and get_spec(n).untrained == UNTRAINED_IDENTITY]
    others = [n for n in names if n not in identity]
    # identity stages untrained, the others' modules with (random) trained weights
    model = small_model(names, trained=[n for n in others if get_spec(n).attribute], model_name=model_name)
    predictor = predictor_for(model, image)
    combined = run(session(predictor, combination))
    assert_same_runs(combined, run(session(predictor, "+".join(reversed(names)))))  # any spelling, one order
    # untrained identity stages change nothing, whatever they are combined with
    assert_same_runs(combined, run(session(predictor, "+".join(others) or "sam")))


# -- stored steps: state_to_tensors / state_from_tensors --------------------------------------
PROMPTS = [clicksam.Click(x, y, positive) for x, y, positive in CLICKS] + [BOX]


def _made(s: InteractiveSession) -> list[dict]:
    """Every click and the box through ``s``; the tensors of each step."""
    for x, y, positive in CLICKS:
        s.add_click(x, y, positive)
    s.add_box(*BOX)
    return [s.step_tensors(i) for i in range(len(PROMPTS))]


def _count_decodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    step = Pipeline.step
    monkeypatch.setattr(Pipeline, "step", lambda self, *a, **k: calls.append(1) or step(self, *a, **k))
    return calls


@pytest.mark.parametrize("name,model_name", PAIRS)
def test_a_stored_step_continues_exactly_without_a_decode(name, model_name, image, monkeypatch):
    trained = [name] if get_spec(name).attribute else []
    predictor = predictor_for(small_model([name], trained, model_name), image)
    made = session(predictor, name)
    tensors = _made(made)
    frame = predictor.model.image_size
    for step in tensors:  # compact: nothing at the image size, at most the model frame
        assert all(t.numel() <= 256 * frame * frame for t in step.values())
    clone = {key: {k: v.clone() for k, v in step.items()} for key, step in enumerate(tensors)}  # as from a file
    restored = session(predictor, name)
    decodes = _count_decodes(monkeypatch)
    assert restored.restore([(p, clone[i]) for i, p in enumerate(PROMPTS)]) == 0 and decodes == []
    assert restored.clicks == made.clicks and restored.box == made.box
    for _ in range(len(PROMPTS)):  # every step shows what it showed, down to the first
        np.testing.assert_array_equal(restored.logits, made.logits)
        made.undo(), restored.undo()
    for _ in range(len(PROMPTS)):
        made.redo(), restored.redo()
    made.add_click(20.0, 70.0, False)
    restored.add_click(20.0, 70.0, False)  # the next click continues from the stored step, bit for bit
    assert len(decodes) == 2  # one each
    np.testing.assert_array_equal(restored.logits, made.logits)
    assert torch.equal(restored.result.low_res_logits, made.result.low_res_logits)
    assert restored.pipeline.result_tensors(restored.result).keys() == made.pipeline.result_tensors(made.result).keys()


@pytest.mark.parametrize("name", NAMES)
def test_missing_step_tensors_are_recomputed_from_the_step_before(name, image):
    trained = [name] if get_spec(name).attribute else []
    predictor = predictor_for(small_model([name], trained), image)
    made = session(predictor, name)
    tensors = _made(made)
    restored = session(predictor, name)
    assert restored.restore([(p, None if i in (0, 2) else tensors[i]) for i, p in enumerate(PROMPTS)]) == 2
    np.testing.assert_array_equal(restored.logits, made.logits)
    restored.undo(), made.undo()
    np.testing.assert_array_equal(restored.logits, made.logits)  # recomputed from stored step 1: a replay


@pytest.mark.parametrize("name", NAMES)
def test_a_step_of_one_method_continues_with_another(name, image):
    """A method switch: the steps of ``name`` restored in a ``sam`` session and the other way round
    show the same masks and take the next click without error (it need not equal a replay)."""
    trained = [name] if get_spec(name).attribute else []
    predictor = predictor_for(small_model([name], trained), image)
    for made_with, continued_with in ((name, "sam"), ("sam", name)):
        made = session(predictor, made_with)
        tensors = _made(made)
        switched = session(predictor, continued_with)
        assert switched.restore(list(zip(PROMPTS, tensors))) == 0
        np.testing.assert_array_equal(switched.logits, made.logits)
        switched.add_click(20.0, 70.0, False)
        assert np.isfinite(switched.logits).all()


def test_shared_stage_tensors_stay_shared(image):
    """One tensor object shared by many steps (FocSAM's refined embedding) is one object again after
    a restore, whatever the stage; every stage's tensors are what it declares."""
    names = [n for n in NAMES if get_spec(n).attribute]
    predictor = predictor_for(small_model(names, names), image)
    made = session(predictor, "+".join(names))
    tensors = _made(made)
    shared = [k for k in tensors[-1] if k.startswith("state.") and all(t.get(k) is tensors[-1][k] for t in tensors[1:])]
    assert shared, "no stage shares a tensor across steps here (FocSAM's refined embedding should)"
    restored = session(predictor, "+".join(names))
    restored.restore(list(zip(PROMPTS, tensors)))
    after = [restored.step_tensors(i) for i in range(1, len(PROMPTS))]
    for key in shared:
        assert all(t[key] is after[0][key] for t in after)

# -- families a spec does not declare ---------------------------------------------------------
@pytest.mark.parametrize("name", WITH_MODULE)
def test_a_method_is_refused_on_a_family_its_spec_does_not_declare(name, image, monkeypatch):
    """Narrow the spec to SAM alone: attaching the stage to a SAM 2 model, building a step and the
    server's menu all refuse it, saying which families it applies to."""
    from clicksam.methods import registry

    model = small_model([name], model_name="sam2_tiny")  # attached while the spec still allows it
    monkeypatch.setitem(registry._REGISTRY.specs, name, dataclasses.replace(get_spec(name), families=("sam",)))
    expected = f"the {name!r} method applies to sam models, not to this sam2 model (sam2_tiny)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        attach_stage(small_model(model_name="sam2_tiny"), name)
    predictor = predictor_for(model, image)
    for build in (lambda: InteractiveSession(predictor, method=name, allow_untrained=True),
                  lambda: SamSegmenter(predictor, name, allow_untrained=True)):
        with pytest.raises(ValueError, match=re.escape(expected)):
            build()
    option = {o.name: o for o in method_options_for(model)}[name]
    assert not option.available and option.reason == f"{name} does not apply to sam2 models"
    assert {o.name: o for o in method_options_for(model)}["sam"].available
