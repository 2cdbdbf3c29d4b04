"""The exported decoder against ``Sam.decode`` + ``Sam.postprocess_masks`` (same weights)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from clicksam.transforms import preprocess_shape
from tests.onnx.conftest import make_feed

TOL = 1e-4  # low-res logits and IoU: float32 round-off
UPSCALED_TOL = 1e-3  # logits after two resizes (onnxruntime's Resize vs torch's interpolate)

CLICKS = np.array([[500.0, 300.0], [100.0, 700.0], [900.5, 20.25], [3.0, 1000.0]], np.float32)
BOX = np.array([100.0, 150.0, 700.0, 600.0], np.float32)


def prompts(case: str) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(coords N×2, labels N, box 4) in the 1024 frame for a named case."""
    if case == "one_click":
        return CLICKS[:1], np.array([1]), None
    if case == "two_clicks":
        return CLICKS[:2], np.array([1, 0]), None
    if case == "many_clicks":
        rng = np.random.default_rng(3)
        return rng.uniform(0, 1023, (12, 2)).astype(np.float32), rng.integers(0, 2, 12), None
    if case == "box":
        return None, None, BOX
    if case == "box_and_clicks":
        return CLICKS[:2], np.array([1, 0]), BOX
    raise ValueError(case)


def graph_points(coords, labels, box) -> tuple[np.ndarray, np.ndarray]:
    """SAM's ONNX convention: box corners get labels 2 and 3, otherwise one padding point."""
    all_coords = [np.zeros((0, 2), np.float32)] if coords is None else [coords]
    all_labels = [np.zeros(0)] if labels is None else [labels]
    if box is None:
        all_coords.append(np.zeros((1, 2), np.float32))
        all_labels.append(np.array([-1]))
    else:
        all_coords.append(box.reshape(2, 2))
        all_labels.append(np.array([2, 3]))
    return np.concatenate(all_coords).astype(np.float32), np.concatenate(all_labels).astype(np.float32)


def torch_reference(model, embedding, coords, labels, box, mask_input, orig_size):
    """All four tokens from the torch model: (masks 1×4×H×W, iou 1×4, low-res 1×4×256×256)."""
    points = None
    if coords is not None:
        points = (torch.as_tensor(coords)[None], torch.as_tensor(labels, dtype=torch.int)[None])
    boxes = None if box is None else torch.as_tensor(box)[None]
    mask = None if mask_input is None else torch.as_tensor(mask_input)
    with torch.no_grad():
        out = model.decode(embedding, points, boxes, mask, multimask_output=True)
        input_size = preprocess_shape(orig_size[0], orig_size[1], model.image_size)
        masks = model.postprocess_masks(out.all_low_res_logits, input_size, orig_size)
    return masks.numpy(), out.all_iou_predictions.numpy(), out.all_low_res_logits.numpy()


def assert_masks_agree(onnx_masks: np.ndarray, torch_masks: np.ndarray) -> None:
    assert onnx_masks.shape == torch_masks.shape
    assert np.abs(onnx_masks - torch_masks).max() < UPSCALED_TOL
    decided = np.abs(torch_masks) > UPSCALED_TOL  # pixels not on the 0 threshold itself
    assert np.array_equal(onnx_masks[decided] > 0, torch_masks[decided] > 0)


def low_res_mask(seed: int = 5) -> np.ndarray:
    return (3 * np.random.default_rng(seed).standard_normal((1, 1, 256, 256))).astype(np.float32)


@pytest.mark.parametrize("with_mask", [False, True], ids=["no_mask", "mask_input"])
@pytest.mark.parametrize("case", ["one_click", "two_clicks", "many_clicks", "box", "box_and_clicks"])
def test_four_masks_match_torch(case, with_mask, tiny_model, four_mask_file, ort_session_factory, embedding):
    coords, labels, box = prompts(case)
    mask_input = low_res_mask() if with_mask else None
    feed = make_feed(embedding, *graph_points(coords, labels, box), mask_input)
    masks, iou, low_res = ort_session_factory(four_mask_file).run(None, feed)
    ref_masks, ref_iou, ref_low_res = torch_reference(tiny_model, embedding, coords, labels, box, mask_input, (400, 600))
    assert low_res.shape == (1, 4, 256, 256) and iou.shape == (1, 4)
    assert np.abs(low_res - ref_low_res).max() < TOL
    assert np.abs(iou - ref_iou).max() < TOL
    assert_masks_agree(masks, ref_masks)


@pytest.mark.parametrize("orig_size", [(1024, 683), (37, 1500), (1500, 1500), (999, 1001)])
def test_original_sizes(orig_size, tiny_model, four_mask_file, ort_session_factory, embedding):
    """The crop and the final resize follow orig_im_size at run time, as the predictor's do."""
    coords, labels, box = prompts("two_clicks")
    feed = make_feed(embedding, *graph_points(coords, labels, box), orig_size=orig_size)
    masks, _, _ = ort_session_factory(four_mask_file).run(None, feed)
    ref_masks, _, _ = torch_reference(tiny_model, embedding, coords, labels, box, None, orig_size)
    assert masks.shape == (1, 4, *orig_size)
    assert_masks_agree(masks, ref_masks)


@pytest.mark.parametrize("case", ["one_click", "box", "two_clicks", "box_and_clicks"])
def test_single_mask_follows_sams_rule(case, tiny_model, single_mask_file, ort_session_factory, embedding):
    """At most two prompt points (one click + padding, or a box): the best-IoU multimask output;
    more: the single-mask token."""
    coords, labels, box = prompts(case)
    points, point_labels = graph_points(coords, labels, box)
    masks, iou, low_res = ort_session_factory(single_mask_file).run(None, make_feed(embedding, points, point_labels))
    ref_masks, ref_iou, ref_low_res = torch_reference(tiny_model, embedding, coords, labels, box, None, (400, 600))
    expected = 1 + int(np.argmax(ref_iou[0, 1:])) if len(points) <= 2 else 0
    assert masks.shape == (1, 1, 400, 600) and iou.shape == (1, 1) and low_res.shape == (1, 1, 256, 256)
    assert np.abs(iou[0, 0] - ref_iou[0, expected]) < TOL
    assert np.abs(low_res[0, 0] - ref_low_res[0, expected]).max() < TOL
    assert_masks_agree(masks, ref_masks[:, expected : expected + 1])


def test_file_metadata_and_permissions(four_mask_file):
    import onnx

    proto = onnx.load(str(four_mask_file))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["clicksam.format"] == "sam-decoder"
    assert meta["clicksam.model"] == "tiny"
    assert meta["clicksam.return_single_mask"] == "0" and meta["clicksam.quantized"] == "0"
    assert meta["clicksam.opset"] == "17"
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {17}
    assert [i.name for i in proto.graph.input] == [
        "image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"
    ]
    assert [o.name for o in proto.graph.output] == ["masks", "iou_predictions", "low_res_masks"]
    assert os.stat(four_mask_file).st_mode & 0o777 == 0o644
    leftovers = [p.name for p in four_mask_file.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_quantized_file_runs_close_to_float(four_mask_file, ort_session_factory, embedding, tmp_path):
    from clicksam.onnx.export import quantize_bytes

    quantized = tmp_path / "quantized.onnx"
    quantized.write_bytes(quantize_bytes(four_mask_file.read_bytes(), tmp_path))
    assert quantized.stat().st_size < 0.6 * four_mask_file.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quantized.onnx"]  # temporaries removed
    feed = make_feed(embedding, *graph_points(*prompts("two_clicks")), low_res_mask())
    masks, iou, low_res = ort_session_factory(quantized).run(None, feed)
    _, ref_iou, ref_low_res = ort_session_factory(four_mask_file).run(None, feed)
    assert masks.shape == (1, 4, 400, 600) and np.isfinite(low_res).all()
    assert np.corrcoef(low_res.ravel(), ref_low_res.ravel())[0, 1] > 0.95
    assert np.abs(iou - ref_iou).max() < 0.1


@pytest.mark.parametrize("opset", [13, 21, 17.0, "17", True])
def test_bad_opset(opset, tiny_model, tmp_path):
    from clicksam.onnx import export_decoder

    with pytest.raises(ValueError, match="opset"):
        export_decoder(tiny_model, tmp_path / "d.onnx", opset=opset)
    assert not (tmp_path / "d.onnx").exists()


def test_bad_model_and_output(tiny_model, tmp_path):
    import clicksam
    from clicksam.onnx import export_decoder

    with pytest.raises(ValueError, match="clicksam Sam"):
        export_decoder(torch.nn.Linear(2, 2), tmp_path / "d.onnx")
    with pytest.raises(ValueError, match="is a directory"):
        export_decoder(tiny_model, tmp_path)
    half = clicksam.build_sam("tiny").half()
    with pytest.raises(ValueError, match="float32"):
        export_decoder(half, tmp_path / "d.onnx")


def test_missing_extra_names_it(monkeypatch, tiny_model, tmp_path):
    import sys

    from clicksam.onnx import export_decoder

    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    with pytest.raises(RuntimeError, match=r"clicksam\[onnx\]"):
        export_decoder(tiny_model, tmp_path / "d.onnx")


def test_method_stages_export_through_their_spec_hooks(tmp_path, monkeypatch):
    """A stage is left out of the export unless its spec has an ONNX hook; the hook is called."""
    from torch import nn

    from clicksam import build_sam
    from clicksam.methods import MethodSpec, OnnxExport, Stage, register, registry
    from clicksam.onnx.export import attached_methods, export_methods

    monkeypatch.setattr(registry, "_REGISTRY", registry._Registry())
    calls = []

    def export(model, decoder_path, opset):
        calls.append(opset)
        path = decoder_path.with_name("toy.onnx")
        path.write_bytes(b"toy")
        return [path]

    def attach(model):
        model.add_module("toy_module", nn.Linear(1, 1))
        return model.toy_module

    def attach_plain(model):
        model.add_module("toy_plain", nn.Linear(1, 1))
        return model.toy_plain

    register(MethodSpec(name="toy-export", stage=Stage, attribute="toy_module", attach=attach, onnx=OnnxExport(export)))
    without = register(MethodSpec(name="toy-plain", stage=Stage, attribute="toy_plain", attach=attach_plain)).name
    model = build_sam("tiny", methods=["toy-export", without])
    assert attached_methods(model) == [without]  # no hook: not part of the export (the CLI says so)
    assert export_methods(model, tmp_path / "decoder.onnx", 17) == {"toy-export": [tmp_path / "toy.onnx"]}
    assert calls == [17] and export_methods(build_sam("tiny"), tmp_path / "decoder.onnx") == {}
