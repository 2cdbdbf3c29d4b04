"""SamPredictor: shapes, embeddings, and the messages for bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import clicksam


def test_predict_shapes(tiny_predictor):
    masks, scores, low = tiny_predictor.predict(np.array([[100, 120]]), np.array([1]))
    assert masks.shape == (3, 400, 600) and masks.dtype == bool
    assert scores.shape == (3,) and low.shape == (3, 256, 256)
    masks, scores, low = tiny_predictor.predict(box=np.array([10, 20, 300, 200]), multimask_output=False, return_logits=True)
    assert masks.shape == (1, 400, 600) and masks.dtype == np.float32
    masks, _, _ = tiny_predictor.predict(np.array([[100, 120]]), np.array([1]), mask_input=low, multimask_output=False)
    assert masks.shape == (1, 400, 600)


def test_embedding_round_trip(tiny_model, tiny_predictor):
    emb = tiny_predictor.get_image_embedding()
    other = clicksam.SamPredictor(tiny_model)
    other.set_image_embedding(emb, tiny_predictor.original_size)
    assert other.input_size == tiny_predictor.input_size == (683, 1024)
    a = tiny_predictor.predict(np.array([[50, 60]]), np.array([1]), return_logits=True)[0]
    b = other.predict(np.array([[50, 60]]), np.array([1]), return_logits=True)[0]
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match=r"embedding must have shape 1x256x64x64, got \(1, 256, 32, 32\)"):
        other.set_image_embedding(torch.zeros(1, 256, 32, 32), (10, 10))


def test_bgr_input_equals_rgb(tiny_model, photo):
    a, b = clicksam.SamPredictor(tiny_model), clicksam.SamPredictor(tiny_model)
    a.set_image(photo)
    b.set_image(photo[..., ::-1].copy(), image_format="BGR")
    assert torch.equal(a.features, b.features)


def test_predict_before_set_image(tiny_model):
    with pytest.raises(RuntimeError, match=r"no image is set; call set_image\(image\)"):
        clicksam.SamPredictor(tiny_model).predict(np.array([[1, 1]]), np.array([1]))


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((0, 10, 3), np.uint8), "is empty"),
        (np.zeros((10, 10, 3), np.float32), r"dtype float32; SAM expects uint8 0-255. Convert explicitly"),
        (np.zeros((10, 10, 3), np.uint16), r"dtype uint16 \(16-bit or wider\)"),
        (np.zeros((10, 10, 5), np.uint8), r"shape \(10, 10, 5\); give an HxWx3 uint8 RGB image"),
        ("image.jpg", "must be a numpy array"),
    ],
)
def test_bad_images(tiny_model, image, message):
    with pytest.raises(ValueError, match=message):
        clicksam.SamPredictor(tiny_model).set_image(image)


def test_grayscale_and_rgba_convert_with_warning(tiny_model):
    p = clicksam.SamPredictor(tiny_model)
    with pytest.warns(UserWarning, match="grayscale"):
        p.set_image(np.full((32, 48), 100, np.uint8))
    with pytest.warns(UserWarning, match="RGBA"):
        p.set_image(np.full((32, 48, 4), 100, np.uint8))
    assert p.original_size == (32, 48)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(point_coords=np.array([[700, 10]]), point_labels=np.array([1])), r"click \(x=700.0, y=10.0\) is outside the 600x400"),
        (dict(point_coords=np.array([[np.nan, 10]]), point_labels=np.array([1])), "NaN or infinite"),
        (dict(point_coords=np.array([[5, 10]]), point_labels=np.array([7])), r"unknown point label\(s\) \[7\]"),
        (dict(point_coords=np.array([[5, 10]])), "must be given together"),
        (dict(point_coords=np.array([5, 10]), point_labels=np.array([1])), r"point_coords must have shape Nx2"),
        (dict(box=np.array([300, 10, 100, 200])), "has x1 < x0 or y1 < y0"),
        (dict(box=np.array([1, 2, 3])), "box must have 4 values"),
        (dict(point_coords=np.array([[5, 10]]), point_labels=np.array([1]), mask_input=np.zeros((256, 256))), r"mask_input must have shape 1x256x256"),
    ],
)
def test_bad_prompts(tiny_predictor, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_predictor.predict(**kwargs)


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found"):
        clicksam.read_image(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="cannot read image .*bad.jpg: it is not an image file"):
        clicksam.read_image(bad)


def test_resize_golden_shapes():
    from clicksam.transforms import ResizeLongestSide, preprocess_shape

    assert preprocess_shape(400, 600, 1024) == (683, 1024)
    assert preprocess_shape(480, 854, 1024) == (576, 1024)
    assert preprocess_shape(1000, 10, 1024) == (1024, 10)
    t = ResizeLongestSide(1024)
    np.testing.assert_allclose(t.apply_coords(np.array([[600.0, 400.0]]), (400, 600)), [[1024.0, 400 * 683 / 400]], rtol=1e-6)
    np.testing.assert_allclose(t.apply_boxes(np.array([0, 0, 300, 200]), (400, 600)), [[0, 0, 512, 341.5]], rtol=1e-6)
