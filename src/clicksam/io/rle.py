"""Run-length encodings of binary masks.

Two encodings:

* COCO RLE (column-major, compressed ``counts`` string) through ``pycocotools``, the format of
  COCO/LVIS/SA-1B annotation files. ``counts`` is kept as ``str`` so the dict is JSON-ready.
* Row-major runs (``{"size": [h, w], "counts": [n0, n1, ...]}``, alternating background /
  foreground lengths starting with background), which a browser decodes in a few lines.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "mask_to_rle",
    "rle_to_mask",
    "rle_area",
    "rle_bbox",
    "mask_to_runs",
    "runs_to_mask",
    "check_mask",
]


def _mask_utils() -> Any:
    try:
        from pycocotools import mask as mask_utils
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "COCO RLE needs pycocotools: pip install 'clicksam[web]' (or 'clicksam[train]')"
        ) from exc
    return mask_utils


def check_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a C-contiguous HxW bool array, or raise ``ValueError``.

    Accepts bool arrays and integer/float arrays holding only 0 and 1.
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D HxW array, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    if array.dtype != bool:
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise ValueError(f"{name} must be bool or numeric, got dtype {array.dtype}")
        values = np.unique(array)
        if not np.all(np.isin(values, (0, 1))):
            raise ValueError(f"{name} must hold only 0 and 1, found values {values[:5].tolist()}")
        array = array.astype(bool)
    return np.ascontiguousarray(array)


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode an HxW binary mask as COCO RLE ``{"size": [h, w], "counts": str}``."""
    binary = check_mask(mask)
    rle = _mask_utils().encode(np.asfortranarray(binary.astype(np.uint8)))
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _coco_rle(rle: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("an RLE must be a dict with 'size' and 'counts'")
    size = rle["size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and v > 0 for v in size)):
        raise ValueError(f"RLE 'size' must be [height, width] of positive ints, got {size!r}")
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed COCO RLE
        if sum(counts) != size[0] * size[1]:
            raise ValueError(f"RLE counts sum to {sum(counts)}, expected {size[0] * size[1]}")
        return _mask_utils().frPyObjects({"size": list(size), "counts": counts}, size[0], size[1])
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise ValueError(f"RLE 'counts' must be a string or a list, got {type(counts).__name__}")
    return {"size": [int(size[0]), int(size[1])], "counts": counts}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode COCO RLE (compressed string or uncompressed list ``counts``) to an HxW bool mask."""
    coco = _coco_rle(rle)
    try:
        decoded = _mask_utils().decode(coco)
    except Exception as exc:  # pycocotools raises bare exceptions on corrupt strings
        raise ValueError(f"corrupt RLE counts: {exc}") from exc
    height, width = coco["size"]
    if decoded.shape[:2] != (height, width):
        raise ValueError(f"RLE decoded to shape {decoded.shape}, expected {(height, width)}")
    return np.ascontiguousarray(decoded.astype(bool))


def rle_area(rle: dict[str, Any]) -> int:
    """Number of foreground pixels of a COCO RLE."""
    return int(_mask_utils().area(_coco_rle(rle)))


def rle_bbox(rle: dict[str, Any]) -> list[float]:
    """COCO bounding box ``[x, y, w, h]`` of a COCO RLE (all zeros for an empty mask)."""
    return [float(v) for v in _mask_utils().toBbox(_coco_rle(rle)).tolist()]


def mask_to_runs(mask: np.ndarray) -> dict[str, Any]:
    """Row-major run lengths ``{"size": [h, w], "counts": [...]}``; the first run is background."""
    binary = check_mask(mask).ravel()
    height, width = np.asarray(mask).shape
    change = np.flatnonzero(binary[1:] != binary[:-1]) + 1
    edges = np.concatenate(([0], change, [binary.size]))
    counts = np.diff(edges).tolist()
    if binary[0]:
        counts.insert(0, 0)
    return {"size": [int(height), int(width)], "counts": [int(c) for c in counts]}


def runs_to_mask(runs: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`mask_to_runs`."""
    size = runs.get("size") if isinstance(runs, dict) else None
    counts = runs.get("counts") if isinstance(runs, dict) else None
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not isinstance(counts, list):
        raise ValueError("runs must be a dict with 'size' [h, w] and a 'counts' list")
    height, width = int(size[0]), int(size[1])
    lengths = np.asarray(counts, dtype=np.int64)
    if lengths.size and lengths.min() < 0:
        raise ValueError("run lengths must be non-negative")
    if int(lengths.sum()) != height * width:
        raise ValueError(f"runs sum to {int(lengths.sum())}, expected {height * width}")
    values = np.arange(lengths.size) % 2 == 1
    return np.repeat(values, lengths).reshape(height, width)
