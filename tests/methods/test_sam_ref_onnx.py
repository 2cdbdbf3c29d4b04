"""SAM-REF on runtime="onnx": its three graphs and the numpy geometry between them match torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import clicksam
from tests.methods.test_focsam_onnx import perturb, rel_err  # shared helpers of the onnx method tests

pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
pytestmark = pytest.mark.filterwarnings("ignore:the '.*' stage has no trained weights")

# SAM-REF's gated residual output starts at zero: larger random weights make its change visible
SCALES = {"sam-ref": 0.05}
CLICKS = [(300, 150, True), (120, 330, False), (450, 100, True), (200, 250, True)]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


def predictors(methods, graphs):
    from clicksam.commands.demo import EXAMPLES
    from clicksam.images import read_image
    from clicksam.methods import get_spec, stage_module

    torch.manual_seed(0)
    model = clicksam.build_sam("tiny", methods=methods)
    for i, name in enumerate(methods):
        perturb(stage_module(model, get_spec(name)), seed=i + 1, scale=SCALES.get(name, 0.01))
    if "sam-ref" in methods:  # error maps around 0 (not the trust-SAM -4): the selector and the gate do work
        with torch.no_grad():
            for refiner in (model.sam_ref.gfr, model.sam_ref.lfr):
                cells = refiner.stride * refiner.stride
                refiner.head_out.bias[cells:] = torch.linspace(-0.2, 0.2, cells)
    ref = clicksam.SamPredictor(model)
    ref.set_image(read_image(EXAMPLES / "coffee.jpg"))
    ours = clicksam.SamPredictor(model, runtime="onnx", onnx_cache_dir=graphs)
    ours.set_image_embedding(ref.get_image_embedding(), ref.original_size, ref.input_size)  # the click alone:
    ours.input_image = ref.input_image  # the same embedding and pixels, no onnx encoder in between
    return ours, ref


def run_session(predictor, method):
    session = clicksam.InteractiveSession(predictor, method=method, allow_untrained=True)
    out = []
    for x, y, positive in CLICKS:
        mask = session.add_click(x, y, positive)
        out.append((session.result.low_res_logits.clone(), session.result.frame_logits.clone(), mask,
                    torch.from_numpy(session.result.logits.copy()),
                    dict(session.result.state)))  # (low-res, frame, mask, image-size logits, state)
    return out


@pytest.mark.parametrize("methods", [["sam-ref"], ["stable-sam", "sam-ref"], ["focsam", "sam-ref"],
                                     ["stable-sam", "focsam", "sam-ref"]])
def test_onnx_session_matches_torch(methods, graphs):
    ours, ref = predictors(methods, graphs)
    method = "+".join(methods)
    onnx_steps, torch_steps = run_session(ours, method), run_session(ref, method)
    without = run_session(ref, "+".join(m for m in methods if m != "sam-ref") or "sam")
    assert max(rel_err(a[3], b[3]) for a, b in zip(without, torch_steps)) > 0.05  # SAM-REF changes the logits
    assert any(not np.array_equal(a[2], b[2]) for a, b in zip(without, torch_steps))  # and the masks
    for (low_o, final_o, mask_o, full_o, state_o), (low_r, final_r, mask_r, full_r, state_r) in zip(onnx_steps, torch_steps):
        assert rel_err(low_o, low_r) < 1e-4
        assert rel_err(final_o, final_r) < 1e-4
        assert (mask_o != mask_r).mean() < 1e-4  # the upscaling to the image size differs in float order only
        assert rel_err(full_o, full_r) < 1e-4
        assert state_o.keys() == state_r.keys()
        assert state_o["sam_ref.window"] == state_r["sam_ref.window"]
        assert state_o["sam_ref.used_previous"] == state_r["sam_ref.used_previous"]
        assert abs(state_o["sam_ref.error_area"] - state_r["sam_ref.error_area"]) <= 2


def test_the_stage_runs_the_graphs(graphs):
    from clicksam.methods.sam_ref.onnx import OnnxSamRef

    ours, _ = predictors(["sam-ref"], graphs)
    session = clicksam.InteractiveSession(ours, method="sam-ref", allow_untrained=True)
    assert isinstance(session.pipeline.stages[0].module, OnnxSamRef)


def test_server_menu_lists_it_on_onnx(graphs):
    from clicksam.server.backend import method_options_for

    ours, _ = predictors(["stable-sam", "sam-ref"], graphs)
    options = {o.name: o for o in method_options_for(ours.model, ours.runtime)}
    for name in ("sam-ref", "stable-sam+sam-ref"):
        assert options[name].available, options[name].reason


@pytest.mark.parametrize("in_size,out_size", [(131, 256), (384, 256), (256, 256), (1024, 256), (256, 64), (70, 256)])
@pytest.mark.parametrize("antialias", [False, True])
def test_resample_taps_match_interpolate(in_size, out_size, antialias):
    from clicksam.methods.sam_ref.onnx import resample_taps

    x = torch.randn(1, 1, in_size, 3, generator=torch.Generator().manual_seed(in_size))
    expected = F.interpolate(x, size=(out_size, 3), mode="bilinear", align_corners=False, antialias=antialias)
    index, weight = resample_taps(in_size, out_size, antialias)
    ours = (x[0, 0].numpy()[index] * weight[..., None]).sum(axis=1)
    assert np.abs(ours - expected[0, 0].numpy()).max() < 1e-5


@pytest.mark.parametrize("window", [(0, 0, 1024, 683), (333, 37, 450, 194), (960, 900, 1024, 1024)])
def test_embedding_taps_match_crop_embedding(window):
    from clicksam.methods.sam_ref.onnx import embedding_taps
    from clicksam.methods.sam_ref.window import crop_embedding

    emb = torch.randn(1, 8, 64, 64, generator=torch.Generator().manual_seed(0))
    expected = crop_embedding(emb, [window], 64, 1024)[0].numpy()
    (ri, rw), (ci, cw) = embedding_taps(window[1], window[3], 64, 64, 1024), embedding_taps(window[0], window[2], 64, 64, 1024)
    rows = (emb[0].numpy()[:, ri] * rw[None, :, :, None]).sum(axis=2)
    ours = (rows[:, :, ci] * cw).sum(axis=-1)
    assert np.abs(ours - expected).max() < 1e-5


def test_click_disks_match_torch():
    from clicksam.methods.sam_ref import prompt_maps
    from clicksam.methods.sam_ref.onnx import click_disks

    points = torch.tensor([[[3.25, 1020.7], [500.5, 200.0], [10.0, 10.0], [1023.9, 0.1]]])
    labels = torch.tensor([[1, 0, -1, 1]])
    expected = prompt_maps.click_disks(points, labels, (1024, 1024), 5.0)
    assert np.array_equal(click_disks(points, labels, 1024, 5.0), expected.numpy())


def test_export_hook_writes_the_refiner_graphs(graphs, tmp_path):
    from clicksam.onnx.export import export_methods

    _, ref = predictors(["sam-ref"], graphs)
    files = export_methods(ref.model, tmp_path / "decoder.onnx")
    assert [p.name for p in files["sam-ref"]] == [f"decoder.sam-ref-{g}.onnx" for g in ("context", "global", "patch")]
    assert all(p.stat().st_size > 0 for p in files["sam-ref"])
