"""SamTransforms: the one preprocessing path (image, training batches, prompts, masks)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clicksam.transforms import PIXEL_MEAN, PIXEL_STD, SamTransforms


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)


def test_image_to_input_resizes_normalises_and_pads(rgb):
    t = SamTransforms(256)
    x, size = t.image_to_input(rgb)
    assert x.shape == (1, 3, 256, 256) and size == (154, 256) == t.input_size((120, 200))
    resized = torch.from_numpy(t.resize.apply_image(rgb)).permute(2, 0, 1).float()
    mean, std = torch.tensor(PIXEL_MEAN).view(3, 1, 1), torch.tensor(PIXEL_STD).view(3, 1, 1)
    assert torch.equal(x[0, :, :154], (resized - mean) / std)
    assert torch.count_nonzero(x[0, :, 154:]) == 0


def test_bgr_weights_get_bgr_pixels_everywhere(rgb):
    rgb_t, bgr_t = SamTransforms(256), SamTransforms(256, image_format="BGR")
    assert np.array_equal(bgr_t.resize_image(rgb), rgb_t.resize_image(rgb)[..., ::-1])
    padded = torch.zeros(1, 3, 256, 256, dtype=torch.uint8)
    padded[0, :, :154] = torch.from_numpy(rgb_t.resize_image(rgb)).permute(2, 0, 1)
    sizes = torch.tensor([[154, 256]])
    assert torch.equal(bgr_t.padded_batch_to_input(padded, sizes), bgr_t.image_to_input(rgb)[0])
    with pytest.raises(ValueError, match="'RGB' or 'BGR'"):
        SamTransforms(256, image_format="HSV")


def test_training_batches_equal_the_predictor_input(rgb):
    """The trainer's and the store's path (padded batches) gives the predictor's input exactly."""
    t = SamTransforms(256)
    images = [rgb, rgb[:90, :60].copy()]
    padded = torch.zeros(2, 3, 256, 256, dtype=torch.uint8)
    sizes, expected = [], []
    for i, image in enumerate(images):
        x, (h, w) = t.image_to_input(image)
        padded[i, :, :h, :w] = torch.from_numpy(t.resize_image(image)).permute(2, 0, 1)
        sizes.append([h, w])
        expected.append(x)
    assert torch.equal(t.padded_batch_to_input(padded, torch.tensor(sizes)), torch.cat(expected))


def test_prompts_go_to_the_resized_frame():
    t = SamTransforms(1024)
    coords = t.apply_coords(np.array([[600.0, 400.0], [0.0, 0.0]], np.float32), (400, 600))
    np.testing.assert_allclose(coords, [[1024.0, 683.0], [0.0, 0.0]], rtol=1e-6)
    assert t.apply_boxes(np.array([0, 0, 300, 200], np.float32), (400, 600)).shape == (1, 4)


@pytest.mark.parametrize("grid", [256, 1024])
def test_postprocess_masks_crops_and_resizes_from_any_frame_grid(grid):
    t = SamTransforms(1024)
    logits = torch.randn(1, 2, grid, grid)
    out = t.postprocess_masks(logits, (683, 1024), (400, 600))
    full = F.interpolate(logits, (1024, 1024), mode="bilinear", align_corners=False)
    want = F.interpolate(full[..., :683, :1024], (400, 600), mode="bilinear", align_corners=False)
    assert out.shape == (1, 2, 400, 600)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


def test_describe_names_what_the_pixels_go_through():
    described = SamTransforms(1024, image_format="BGR").describe()
    assert described["image_format"] == "BGR" and described["image_size"] == 1024
    assert described["preprocess"] == SamTransforms.version
    assert described["pixel_mean"] == [round(float(v), 6) for v in torch.tensor(PIXEL_MEAN)]
