"""Binary masks and label maps as PNG files.

A *label map* is an HxW integer array: 0 background, k > 0 the pixels of object (or class) k.
It is written as an 8-bit PNG when every value fits, else as a 16-bit PNG. Binary masks are
written as 8-bit PNGs holding 0 and 255.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from clicksam.io.atomic import atomic_write_bytes
from clicksam.io.rle import check_mask

__all__ = [
    "masks_to_label_map",
    "label_map_to_masks",
    "label_map_png_bytes",
    "write_label_map",
    "read_label_map",
    "write_mask",
    "read_mask",
]


def masks_to_label_map(masks: Sequence[np.ndarray], values: Sequence[int] | None = None,
                       shape: tuple[int, int] | None = None) -> np.ndarray:
    """Paint binary masks into one label map; later masks are drawn over earlier ones.

    Args:
        masks: HxW binary masks, all of one shape.
        values: the label of each mask (default 1, 2, ...); each in 1..65535.
        shape: (H, W) of the map, needed only when ``masks`` is empty.

    Returns:
        HxW ``uint8`` label map when every value is below 256, else ``uint16``.
    """
    labels = list(range(1, len(masks) + 1)) if values is None else [int(v) for v in values]
    if len(labels) != len(masks):
        raise ValueError(f"got {len(masks)} masks but {len(labels)} values")
    if any(v < 1 or v > 65535 for v in labels):
        raise ValueError("label values must lie in 1..65535 (0 is the background)")
    if not masks:
        if shape is None:
            raise ValueError("shape is required when there are no masks")
        return np.zeros(shape, dtype=np.uint8)
    checked = [check_mask(m, f"masks[{i}]") for i, m in enumerate(masks)]
    size = checked[0].shape
    if shape is not None and tuple(shape) != size:
        raise ValueError(f"masks have shape {size} but shape {tuple(shape)} was asked for")
    dtype = np.uint8 if max(labels) < 256 else np.uint16
    label_map = np.zeros(size, dtype=dtype)
    for index, (mask, value) in enumerate(zip(checked, labels)):
        if mask.shape != size:
            raise ValueError(f"masks[{index}] has shape {mask.shape}, expected {size}")
        label_map[mask] = value
    return label_map


def label_map_to_masks(label_map: np.ndarray) -> dict[int, np.ndarray]:
    """Split a label map into ``{value: HxW bool mask}`` for every non-zero value."""
    array = np.asarray(label_map)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"a label map must be a 2-D integer array, got {array.dtype} {array.shape}")
    return {int(v): array == v for v in np.unique(array) if v != 0}


def label_map_png_bytes(array: np.ndarray) -> bytes:
    """PNG bytes of an HxW uint8 or uint16 array (8- or 16-bit single channel)."""
    buffer = io.BytesIO()
    if array.dtype == np.uint16:
        image = Image.fromarray(array.astype(np.uint16))  # mode I;16
    else:
        image = Image.fromarray(array.astype(np.uint8))
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_label_map(path: str | os.PathLike[str], label_map: np.ndarray) -> Path:
    """Write a label map as an 8- or 16-bit single-channel PNG (atomically)."""
    array = np.asarray(label_map)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"a label map must be a 2-D integer array, got {array.dtype} {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise ValueError("label map values must lie in 0..65535")
    dtype = np.uint8 if (not array.size or array.max() < 256) else np.uint16
    return atomic_write_bytes(path, label_map_png_bytes(array.astype(dtype)))


def read_label_map(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a single-channel (8/16-bit or palette) PNG label map as an HxW integer array."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"label map not found: {file}")
    with Image.open(file) as image:
        if image.mode not in ("L", "P", "I;16", "I", "1"):
            raise ValueError(f"{file}: a label map must be single-channel, got PNG mode {image.mode}")
        array = np.asarray(image)
    return array.astype(np.uint8) if array.dtype == bool else array


def write_mask(path: str | os.PathLike[str], mask: np.ndarray) -> Path:
    """Write a binary mask as an 8-bit PNG of 0 and 255 (atomically)."""
    return atomic_write_bytes(path, label_map_png_bytes(check_mask(mask).astype(np.uint8) * 255))


def read_mask(path: str | os.PathLike[str], threshold: int = 127) -> np.ndarray:
    """Read a mask image as HxW bool (pixels above ``threshold``; colour images via luminance)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"mask not found: {file}")
    with Image.open(file) as image:
        array = np.asarray(image.convert("L") if image.mode not in ("L", "1", "I;16", "I") else image)
    return array > threshold if array.dtype != bool else array.copy()
