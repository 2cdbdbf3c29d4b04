"""``OnnxDecoder`` against ``SamPredictor.predict`` on a real photo (same weights, same embedding)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clicksam.onnx import OnnxDecoder

TOL = 1e-4
UPSCALED_TOL = 1e-3


@pytest.fixture(scope="module")
def decoder(four_mask_file) -> OnnxDecoder:
    return OnnxDecoder(four_mask_file, num_threads=1)


def assert_same(onnx_out, torch_out) -> None:
    masks, scores, low_res = onnx_out
    ref_masks, ref_scores, ref_low_res = torch_out
    assert masks.shape == ref_masks.shape and scores.shape == ref_scores.shape and low_res.shape == ref_low_res.shape
    assert np.abs(scores - ref_scores).max() < TOL
    assert np.abs(low_res - ref_low_res).max() < TOL
    assert np.abs(masks - ref_masks).max() < UPSCALED_TOL


@pytest.mark.parametrize(
    "prompt",
    [
        dict(point_coords=[[288, 140]], point_labels=[1]),
        dict(point_coords=[[288, 140], [162, 323]], point_labels=[1, 0], multimask_output=False),
        dict(box=[100, 20, 500, 380]),
        dict(point_coords=[[288, 140]], point_labels=[1], box=[100, 20, 500, 380], multimask_output=False),
    ],
    ids=["one_click", "two_clicks_single", "box", "box_and_click"],
)
def test_matches_predictor(prompt, decoder, tiny_predictor):
    decoder.set_predictor(tiny_predictor)
    ours = decoder.predict(**prompt, return_logits=True)
    ref = tiny_predictor.predict(**prompt, return_logits=True)
    assert_same(ours, ref)
    assert decoder.predict(**prompt)[0].dtype == bool


def test_mask_input_round_trip(decoder, tiny_predictor):
    """The low-res logits of one call go back in on the next, as in an interactive session."""
    decoder.set_image_embedding(tiny_predictor.get_image_embedding(), tiny_predictor.original_size)
    _, scores, low_res = decoder.predict(point_coords=[[288, 140]], point_labels=[1])
    previous = low_res[np.argmax(scores)][None]
    clicks = dict(point_coords=[[288, 140], [400, 300]], point_labels=[1, 1], multimask_output=False, return_logits=True)
    ours = decoder.predict(**clicks, mask_input=previous)
    ref = tiny_predictor.predict(**clicks, mask_input=previous)
    assert_same(ours, ref)


def test_single_mask_file(single_mask_file, tiny_predictor):
    decoder = OnnxDecoder(single_mask_file, num_threads=1).set_predictor(tiny_predictor)
    assert decoder.single_mask
    masks, scores, low_res = decoder.predict(point_coords=[[288, 140]], point_labels=[1], return_logits=True)
    ref_masks, ref_scores, ref_low_res = tiny_predictor.predict(point_coords=[[288, 140]], point_labels=[1], return_logits=True)
    best = int(np.argmax(ref_scores))
    assert_same((masks, scores, low_res), (ref_masks[best : best + 1], ref_scores[best : best + 1], ref_low_res[best : best + 1]))
    with pytest.raises(ValueError, match="return-single-mask"):
        decoder.predict(point_coords=[[288, 140]], point_labels=[1], multimask_output=True)


def test_accepts_numpy_embedding(decoder, tiny_predictor):
    embedding = tiny_predictor.get_image_embedding().numpy()
    decoder.set_image_embedding(embedding, (400, 600))
    masks, _, _ = decoder.predict(point_coords=np.array([[10.0, 10.0]]), point_labels=np.array([1]))
    assert masks.shape == (3, 400, 600)


def test_errors(decoder, four_mask_file, tiny_model, tmp_path):
    import clicksam

    fresh = OnnxDecoder(four_mask_file, num_threads=1)
    with pytest.raises(RuntimeError, match="no image embedding is set"):
        fresh.predict(point_coords=[[1, 1]], point_labels=[1])
    with pytest.raises(RuntimeError, match="set_image"):
        fresh.set_predictor(clicksam.SamPredictor(tiny_model))
    with pytest.raises(ValueError, match="1x256x64x64"):
        fresh.set_image_embedding(torch.zeros(1, 256, 32, 32), (400, 600))
    with pytest.raises(ValueError, match="original_size"):
        fresh.set_image_embedding(torch.zeros(1, 256, 64, 64), (0, 600))
    fresh.set_image_embedding(torch.zeros(1, 256, 64, 64), (400, 600))
    with pytest.raises(ValueError, match="at least one click"):
        fresh.predict()
    with pytest.raises(ValueError, match="unknown point label"):
        fresh.predict(point_coords=[[1, 1]], point_labels=[2])
    with pytest.raises(ValueError, match="outside"):
        fresh.predict(point_coords=[[600, 10]], point_labels=[1])
    with pytest.raises(ValueError, match="mask_input"):
        fresh.predict(point_coords=[[1, 1]], point_labels=[1], mask_input=np.zeros((256, 256)))
    with pytest.raises(ValueError, match="num_threads"):
        OnnxDecoder(four_mask_file, num_threads=0)
    with pytest.raises(FileNotFoundError, match="export-onnx"):
        OnnxDecoder(tmp_path / "missing.onnx")


def test_refuses_other_onnx_models(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(RuntimeError, match="not a SAM decoder"):
        OnnxDecoder(path)
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match="cannot load"):
        OnnxDecoder(tmp_path / "garbage.onnx")
