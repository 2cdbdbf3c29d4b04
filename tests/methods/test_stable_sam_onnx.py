"""Stable-SAM on runtime="onnx": the plugin traced into the click-decoder graph matches torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import clicksam

pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")

pytestmark = pytest.mark.filterwarnings("ignore:the 'stable-sam' stage has no trained weights")

CLICKS = [(300, 150, True), (120, 330, False), (450, 100, True), (200, 250, True)]


def rel_err(ours, ref) -> float:
    return float((ours.double() - ref.double()).abs().max() / ref.double().abs().max())


@pytest.fixture(scope="module")
def model():
    """The tiny model with a Stable-SAM plugin of non-trivial random weights: offsets of a few
    cells, routing near half/half, a projection away from the identity."""
    torch.manual_seed(0)
    model = clicksam.build_sam("tiny", methods=["stable-sam"])
    plugin = model.stable_sam
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, p in plugin.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
        plugin.dsp.offset_out.weight.normal_(0.0, 0.5, generator=g)
        plugin.dsp.offset_out.bias.copy_(torch.tensor([1.3, -0.7]))
        plugin.drp.fc2.bias.copy_(torch.tensor([0.0, 0.0]))
    return model


@pytest.fixture(scope="module")
def predictors(model, tmp_path_factory):
    from clicksam.images import read_image
    from clicksam.commands.demo import EXAMPLES

    photo = read_image(EXAMPLES / "coffee.jpg")
    ref = clicksam.SamPredictor(model)
    ref.set_image(photo)
    ours = clicksam.SamPredictor(model, runtime="onnx", onnx_cache_dir=tmp_path_factory.mktemp("graphs"))
    ours.set_image_embedding(ref.get_image_embedding(), ref.original_size, ref.input_size)  # the decoder alone
    return ours, ref


def run_session(predictor, method):
    session = clicksam.InteractiveSession(predictor, method=method)
    out = []
    for x, y, positive in CLICKS:
        mask = session.add_click(x, y, positive)
        out.append((session.result.low_res_logits.clone(), mask))
    return out


def test_plugin_changes_the_masks(predictors):
    _, ref = predictors
    plain = run_session(ref, "sam")
    stable = run_session(ref, "stable-sam")
    assert max(rel_err(a[0], b[0]) for a, b in zip(plain, stable)) > 0.05  # the weights matter


def test_onnx_session_matches_torch(predictors):
    ours, ref = predictors
    for (low_o, mask_o), (low_r, mask_r) in zip(run_session(ours, "stable-sam"), run_session(ref, "stable-sam")):
        assert rel_err(low_o, low_r) < 1e-4
        assert (mask_o != mask_r).mean() < 1e-4


def test_graph_is_cached_per_plugin_weights(predictors, model):
    ours, _ = predictors
    run_session(ours, "stable-sam")
    assert len(ours.runtime.hooked) == 1
    run_session(ours, "stable-sam")
    assert len(ours.runtime.hooked) == 1  # the same weights: the same graph


def test_combination_with_a_method_off_onnx_is_refused(predictors):
    import dataclasses

    from clicksam.methods import get_spec, list_methods
    from clicksam.methods.registry import register

    other = [n for n in list_methods() if n != "stable-sam" and "sam" in get_spec(n).families][-1]
    spec = get_spec(other)
    register(dataclasses.replace(spec, onnx=None), replace=True)  # as a method without an ONNX path
    try:
        ours, _ = predictors
        both = clicksam.build_sam("tiny", methods=["stable-sam", other])
        predictor = clicksam.SamPredictor(both, runtime=ours.runtime.__class__(both, cache_dir=ours.runtime.cache_dir))
        with pytest.raises(ValueError, match=f"{other!r} method has no ONNX path yet"):
            clicksam.InteractiveSession(predictor, method=f"stable-sam+{other}", allow_untrained=True)
    finally:
        register(spec, replace=True)


def test_export_hook_writes_a_decoder_with_the_plugin(model, predictors, tmp_path):
    from clicksam.onnx import OnnxDecoder, export_decoder
    from clicksam.onnx.export import export_methods

    plain = export_decoder(model, tmp_path / "decoder.onnx")
    files = export_methods(model, plain)
    path = files["stable-sam"][0]
    assert path.name == "decoder.stable-sam.onnx"
    _, ref = predictors
    from clicksam.methods.stable_sam.plugin import decoder_hooks

    _, _, low = OnnxDecoder(path).set_predictor(ref).predict(np.array([[300.0, 150.0]]), np.array([1]),
                                                              multimask_output=False)
    points, _ = ref.model_prompts(np.array([[300.0, 150.0]], np.float32), np.array([1]), None)
    torch_out = ref.decode(points, multimask_output=False, hooks=decoder_hooks(model.stable_sam))
    assert rel_err(torch.as_tensor(low[0]), torch_out.low_res_logits[0, 0]) < 1e-4
