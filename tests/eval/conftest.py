"""Fixtures of the evaluation tests: tiny folder datasets whose metrics can be computed by hand."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

# (stem, top, left, side): square objects in 64x64 images
SQUARES = (("big", 10, 20, 20), ("small", 5, 5, 10))


def square_mask(top: int, left: int, side: int, size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[top:top + side, left:left + side] = 255
    return mask


def write_square_dataset(root: Path, squares=SQUARES, count: int | None = None) -> tuple[Path, Path]:
    """Write images/ and masks/ with one square object per image; returns the two folders."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    items = list(squares)
    if count is not None:  # many objects for the resume tests: repeat the shapes under new stems
        items = [(f"obj{i:03d}", *items[i % len(items)][1:]) for i in range(count)]
    for stem, top, left, side in items:
        cv2.imwrite(str(images / f"{stem}.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(masks / f"{stem}.png"), square_mask(top, left, side))
    return images, masks


@pytest.fixture
def square_dataset(tmp_path) -> tuple[Path, Path]:
    return write_square_dataset(tmp_path / "squares")
