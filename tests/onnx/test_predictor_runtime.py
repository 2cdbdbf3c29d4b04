"""SamPredictor(runtime="onnx"): the encoder, each click and the upscaling on onnxruntime, against torch."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

import clicksam
from clicksam.runtime import TorchRuntime, check_runtime

REL = 1e-4


def rel_err(ours, ref) -> float:
    ours, ref = torch.as_tensor(np.asarray(ours)).double(), torch.as_tensor(np.asarray(ref)).double()
    return float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("click-graphs")


@pytest.fixture(scope="module")
def onnx_predictor(tiny_model, graph_dir):
    return clicksam.SamPredictor(tiny_model, runtime="onnx", onnx_cache_dir=graph_dir)


@pytest.fixture(scope="module")
def torch_predictor(tiny_model):
    return clicksam.SamPredictor(tiny_model)


@pytest.fixture
def both(onnx_predictor, torch_predictor, photo):
    """Both predictors on the photo, the onnx one on the torch embedding (so the decoder is compared alone)."""
    torch_predictor.set_image(photo)
    onnx_predictor.set_image_embedding(torch_predictor.get_image_embedding(), torch_predictor.original_size,
                                       torch_predictor.input_size)
    return onnx_predictor, torch_predictor


def test_encoder_fp32_matches_torch(onnx_predictor, torch_predictor, photo):
    torch_predictor.set_image(photo)
    onnx_predictor.set_image(photo)
    assert onnx_predictor.runtime.name == "onnx" and onnx_predictor.runtime.encoder_precision == "fp32"
    assert rel_err(onnx_predictor.features, torch_predictor.features) < REL
    assert onnx_predictor.input_size == torch_predictor.input_size


@pytest.mark.parametrize("prompt", ["one_click", "clicks", "box", "box_and_click", "mask_input"])
@pytest.mark.parametrize("multimask", [True, False])
def test_predict_matches_torch(both, prompt, multimask):
    onnx_pred, torch_pred = both
    kwargs = {
        "one_click": dict(point_coords=np.array([[300.0, 150.0]]), point_labels=np.array([1])),
        "clicks": dict(point_coords=np.array([[300.0, 150.0], [120.5, 333.0], [500.0, 20.0]]), point_labels=np.array([1, 0, 1])),
        "box": dict(box=np.array([50.0, 60.0, 420.0, 380.0])),
        "box_and_click": dict(point_coords=np.array([[200.0, 200.0]]), point_labels=np.array([0]),
                              box=np.array([50.0, 60.0, 420.0, 380.0])),
    }.get(prompt)
    if prompt == "mask_input":
        _, _, low = torch_pred.predict(np.array([[300.0, 150.0]]), np.array([1]), multimask_output=False)
        kwargs = dict(point_coords=np.array([[300.0, 150.0], [100.0, 100.0]]), point_labels=np.array([1, 0]),
                      mask_input=low)
    ref = torch_pred.predict(**kwargs, multimask_output=multimask, return_logits=True)
    ours = onnx_pred.predict(**kwargs, multimask_output=multimask, return_logits=True)
    assert ours[0].shape == ref[0].shape == (len(ref[1]), *torch_pred.original_size)
    assert rel_err(ours[2], ref[2]) < REL  # low-res logits
    assert rel_err(ours[1], ref[1]) < REL  # predicted IoU
    assert rel_err(ours[0], ref[0]) < REL  # image-size logits (the upscaling graph)
    masks_ours, masks_ref = ours[0] > 0, ref[0] > 0
    assert (masks_ours != masks_ref).mean() < 1e-4


def test_predict_torch_batch_of_prompts(both):
    onnx_pred, torch_pred = both
    coords = torch.tensor([[[300.0, 150.0]], [[100.0, 80.0]]])
    labels = torch.tensor([[1], [1]])
    ref = torch_pred.predict_torch(coords, labels, multimask_output=True, return_logits=True)
    ours = onnx_pred.predict_torch(coords, labels, multimask_output=True, return_logits=True)
    assert ours[2].shape == ref[2].shape == (2, 3, 256, 256)
    for a, b in zip(ours, ref):
        assert rel_err(a, b) < REL


def test_session_clicks_match_torch(onnx_predictor, torch_predictor, photo):
    torch_predictor.set_image(photo)
    onnx_predictor.set_image(photo)  # the onnx encoder too: the whole click road
    sessions = [clicksam.InteractiveSession(p) for p in (onnx_predictor, torch_predictor)]
    for x, y, positive in [(300, 150, True), (120, 330, False), (450, 100, True)]:
        masks = [s.add_click(x, y, positive) for s in sessions]
        results = [s.result for s in sessions]
        assert rel_err(results[0].low_res_logits, results[1].low_res_logits) < 1e-3  # encoder round-off included
        assert (masks[0] != masks[1]).mean() < 1e-3


def test_int8_encoder_runs_and_keys_the_cache_apart(tiny_model, graph_dir, torch_predictor, photo):
    int8 = clicksam.SamPredictor(tiny_model, runtime="onnx", encoder_precision="int8", onnx_cache_dir=graph_dir)
    int8.set_image(photo)
    torch_predictor.set_image(photo)
    assert int8.features.shape == torch_predictor.features.shape
    cos = torch.nn.functional.cosine_similarity(int8.features.flatten(), torch_predictor.features.flatten(), dim=0)
    assert float(cos) > 0.95
    keys = {p.signature(photo).key for p in (int8, torch_predictor,
                                             clicksam.SamPredictor(tiny_model, runtime="onnx", onnx_cache_dir=graph_dir))}
    assert len(keys) == 3


def test_embedding_cache_keeps_int8_apart(tiny_model, graph_dir, photo, tmp_path):
    cache = clicksam.EmbeddingCache(tmp_path / "emb")
    fp32 = clicksam.SamPredictor(tiny_model, cache=cache)
    fp32.set_image(photo)
    int8 = clicksam.SamPredictor(tiny_model, cache=cache, runtime="onnx", encoder_precision="int8", onnx_cache_dir=graph_dir)
    int8.set_image(photo)
    assert not int8.last_encode_cached
    assert not torch.equal(int8.features, fp32.features)


def test_graphs_are_exported_once(tiny_model, graph_dir, onnx_predictor):
    from clicksam.onnx.predictor_runtime import OnnxRuntime

    lines: list[str] = []
    OnnxRuntime(tiny_model, "fp32", cache_dir=graph_dir, log=lines.append)
    assert lines == []  # the module's predictor exported them already


def test_torch_runtime_is_the_default(tiny_model):
    predictor = clicksam.SamPredictor(tiny_model)
    assert isinstance(predictor.runtime, TorchRuntime)
    assert predictor.postprocessor is not None


@pytest.mark.parametrize("runtime, precision, match", [
    ("tensorrt", "fp32", "runtime must be one of"),
    ("onnx", "fp16", "encoder_precision must be one of"),
    ("torch", "int8", "use runtime='onnx'"),
])
def test_bad_choices_are_refused(runtime, precision, match):
    with pytest.raises(ValueError, match=match):
        check_runtime(runtime, precision)


def test_missing_onnxruntime_names_the_extra(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(RuntimeError, match=r"pip install 'clicksam\[onnx\]'"):
        clicksam.SamPredictor(tiny_model, runtime="onnx")


def test_family_without_onnx_path_is_refused():
    from clicksam.onnx.predictor_runtime import OnnxRuntime

    other = types.SimpleNamespace(family="sam2", model_name="sam2.1_hiera_t", device=torch.device("cpu"))
    with pytest.raises(ValueError, match="no ONNX export"):
        OnnxRuntime(other)


@pytest.fixture
def method_off_onnx():
    """A registered method's spec without its ONNX path, for the duration of a test (every method
    has one today); yields the method's name."""
    import dataclasses

    from clicksam.methods import get_spec, list_methods
    from clicksam.methods.registry import register

    name = [n for n in list_methods() if "sam" in get_spec(n).families][-1]
    spec = get_spec(name)
    register(dataclasses.replace(spec, onnx=None), replace=True)
    try:
        yield name
    finally:
        register(spec, replace=True)


def test_method_without_onnx_path_is_refused(graph_dir, method_off_onnx):
    torch.manual_seed(0)
    model = clicksam.build_sam("tiny", methods=[method_off_onnx])
    predictor = clicksam.SamPredictor(model, runtime="onnx", onnx_cache_dir=graph_dir)
    with pytest.raises(ValueError, match="has no ONNX path yet.*runtime='torch'"):
        clicksam.InteractiveSession(predictor, method=method_off_onnx, allow_untrained=True)


def test_untraceable_decoder_hooks_are_refused(both):
    from clicksam.models.hooks import NO_HOOKS

    onnx_pred, _ = both
    hooks = NO_HOOKS.with_kv_plugin(0, lambda q, k: k)
    points = (torch.tensor([[[10.0, 10.0]]]), torch.tensor([[1]]))
    with pytest.raises(ValueError, match="not an nn.Module"):
        onnx_pred.decode(points, hooks=hooks)
