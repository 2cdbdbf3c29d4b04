from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from clicksam.io import (
    atomic_write_json,
    label_map_to_masks,
    masks_to_label_map,
    read_label_map,
    read_mask,
    write_label_map,
    write_mask,
)


def test_label_map_paint_order_and_split():
    a = np.zeros((6, 6), bool)
    a[:4, :4] = True
    b = np.zeros((6, 6), bool)
    b[2:, 2:] = True
    label_map = masks_to_label_map([a, b])
    assert label_map.dtype == np.uint8
    assert label_map[3, 3] == 2 and label_map[0, 0] == 1 and label_map[5, 0] == 0
    parts = label_map_to_masks(label_map)
    assert sorted(parts) == [1, 2]
    np.testing.assert_array_equal(parts[2], b)


def test_label_map_png_8_and_16_bit(tmp_path):
    small = masks_to_label_map([np.eye(5, dtype=bool)], values=[7])
    write_label_map(tmp_path / "a.png", small)
    np.testing.assert_array_equal(read_label_map(tmp_path / "a.png"), small)
    big = masks_to_label_map([np.eye(5, dtype=bool)], values=[300])
    assert big.dtype == np.uint16
    write_label_map(tmp_path / "b.png", big)
    back = read_label_map(tmp_path / "b.png")
    assert back.max() == 300
    np.testing.assert_array_equal(back, big)
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]  # no temporary files left


def test_mask_png_round_trip_and_errors(tmp_path):
    mask = np.zeros((8, 9), bool)
    mask[1:5, 2:7] = True
    write_mask(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)
    Image.new("RGB", (3, 3)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="single-channel"):
        read_label_map(tmp_path / "rgb.png")
    with pytest.raises(FileNotFoundError):
        read_mask(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="0..65535"):
        write_label_map(tmp_path / "x.png", np.full((2, 2), -1))
    with pytest.raises(ValueError, match="2 values"):
        masks_to_label_map([mask], values=[1, 2])


def test_atomic_json_replaces_and_refuses_nan(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert target.read_text().strip().replace("\n", "").replace(" ", "") == '{"a":2}'
    with pytest.raises(ValueError):
        atomic_write_json(target, {"a": float("nan")})
    assert "2" in target.read_text()
    assert os.listdir(target.parent) == ["a.json"]
