"""FocSAM on runtime="onnx": the refiner's own graph and the click graph match torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import clicksam

pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
pytestmark = pytest.mark.filterwarnings("ignore:the '.*' stage has no trained weights")

CLICKS = [(300, 150, True), (120, 330, False), (450, 100, True), (200, 250, True)]


def rel_err(ours, ref) -> float:
    return float((ours.double() - ref.double()).abs().max() / ref.double().abs().max())


def perturb(module, seed, scale=0.01):
    """Non-trivial random weights. Not larger: at 0.05 the random refiner is chaotic (a 1e-6 relative
    change of its input moves its output by 20 %, in torch alone), so no two float orders agree."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


def predictors(methods, graphs):
    from clicksam.commands.demo import EXAMPLES
    from clicksam.images import read_image

    torch.manual_seed(0)
    model = clicksam.build_sam("tiny", methods=methods)
    for i, name in enumerate(methods):
        from clicksam.methods import get_spec, stage_module

        perturb(stage_module(model, get_spec(name)), seed=i + 1)
    ref = clicksam.SamPredictor(model)
    ref.set_image(read_image(EXAMPLES / "coffee.jpg"))
    ours = clicksam.SamPredictor(model, runtime="onnx", onnx_cache_dir=graphs)
    ours.set_image_embedding(ref.get_image_embedding(), ref.original_size, ref.input_size)  # the click alone
    return ours, ref


def run_session(predictor, method):
    session = clicksam.InteractiveSession(predictor, method=method, allow_untrained=True)
    out = []
    for x, y, positive in CLICKS:
        mask = session.add_click(x, y, positive)
        out.append((session.result.low_res_logits.clone(), mask, dict(session.result.state)))
    return out


@pytest.mark.parametrize("methods", [["focsam"], ["stable-sam", "focsam"]])
def test_onnx_session_matches_torch(methods, graphs):
    ours, ref = predictors(methods, graphs)
    method = "+".join(methods)
    onnx_steps, torch_steps = run_session(ours, method), run_session(ref, method)
    plain = run_session(ref, "sam")
    assert max(rel_err(a[0], b[0]) for a, b in zip(plain, torch_steps)) > 0.05  # the stages matter
    for (low_o, mask_o, state_o), (low_r, mask_r, state_r) in zip(onnx_steps, torch_steps):
        assert rel_err(low_o, low_r) < 1e-4
        assert (mask_o != mask_r).mean() < 1e-4
        assert state_o.keys() == state_r.keys()
    refined = [k for k in onnx_steps[-1][2] if k.endswith(".embedding")]
    assert refined, "the session refocused"
    assert rel_err(onnx_steps[-1][2][refined[0]], torch_steps[-1][2][refined[0]]) < 1e-4


def test_the_stage_runs_the_graph(graphs):
    from clicksam.methods.focsam.onnx import OnnxFocusRefiner

    ours, _ = predictors(["focsam"], graphs)
    session = clicksam.InteractiveSession(ours, method="focsam", allow_untrained=True)
    assert isinstance(session.pipeline.stages[0].module, OnnxFocusRefiner)


def test_export_hook_writes_the_refiner_graph(graphs, tmp_path):
    import onnxruntime as ort

    from clicksam.onnx.export import export_methods

    _, ref = predictors(["focsam"], graphs)
    files = export_methods(ref.model, tmp_path / "decoder.onnx")
    path = files["focsam"][0]
    assert path.name == "decoder.focsam-refiner.onnx"
    emb = ref.get_image_embedding()
    logits = torch.full((1, 1, 256, 256), -3.0)
    logits[..., 40:90, 100:180] = 3.0
    token = torch.randn(1, 1, 256)
    out = ort.InferenceSession(str(path)).run(None, {"image_embeddings": emb.numpy(), "coarse_logits": logits.numpy(),
                                                     "mask_token": token.numpy()})[0]
    with torch.no_grad():
        expected = ref.model.focus_refiner(emb, logits, token)
    assert rel_err(torch.from_numpy(out), expected) < 1e-4
    assert np.isfinite(out).all()
