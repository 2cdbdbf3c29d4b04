"""Evaluation metrics of interactive segmentation (SPEC §7.2) and of the prompt protocol (§3).

- IoU over the non-ignore pixels at the original resolution (RITM's ``get_iou``).
- NoC@t: the first click (1-based) whose IoU reaches t, or ``max_clicks`` when never reached.
- NoF@t: the number of objects that never reach t within ``max_clicks`` clicks (SPEC's definition).
  RITM's code counts ``NoC == max_clicks`` instead, which also counts objects that reach t exactly
  at the last click; :func:`nof` offers that with ``ritm_compat=True``.
- mIoU@k for k = 1..max_clicks; 5-mIoU = mIoU@5.
- Boundary IoU (Cheng et al., as in HQ-SAM's evaluation, dilation ratio 0.02).
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

__all__ = [
    "iou", "boundary_iou", "mask_boundary", "noc", "nof", "miou_curve", "summarize_click_ious",
    "mean_pairwise_iou", "DEFAULT_THRESHOLDS",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.85, 0.90, 0.95)


def iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """IoU of a prediction with the object, counting only non-ignore pixels.

    Args:
        gt: HxW int array, 1 object, 0 background, -1 ignore.
        pred: HxW bool array.

    Returns:
        intersection / union in [0, 1]; 1.0 when both the object and the prediction are empty.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} differs from gt shape {gt.shape}")
    obj = gt == 1
    intersection = np.count_nonzero(pred & obj)
    union = np.count_nonzero((pred | obj) & (gt != -1))
    return 1.0 if union == 0 else intersection / union


def _boundary_crop(mask: np.ndarray, dilation: int) -> tuple[np.ndarray, int, int] | None:
    """The boundary band of ``mask`` inside its bounding box: ``(band, top, left)``, None if empty.

    Only the box is eroded, with a 1-px zero ring: every window reaching past the box covers part of
    that ring, exactly as it would cover background (or the image border) in the whole image.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    crop = mask[top:int(rows[-1]) + 1, left:int(cols[-1]) + 1]
    padded = cv2.copyMakeBorder(crop.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=dilation)[1:-1, 1:-1]
    return crop & (eroded == 0), top, left


def _dilation(shape: tuple[int, ...], dilation_ratio: float) -> int:
    return max(1, int(round(dilation_ratio * math.hypot(shape[0], shape[1]))))


def mask_boundary(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """The inner boundary band of a bool mask: pixels within ``d`` of the mask's edge.

    ``d = max(1, round(dilation_ratio * image diagonal))`` iterations of a 3x3 erosion; the image
    border counts as edge (Cheng et al.'s ``mask_to_boundary``).

    Args:
        mask: HxW bool array.

    Returns:
        HxW bool array.
    """
    mask = mask.astype(bool, copy=False)
    band = np.zeros(mask.shape, dtype=bool)
    found = _boundary_crop(mask, _dilation(mask.shape, dilation_ratio))
    if found is not None:
        crop, top, left = found
        band[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    return band


def boundary_iou(gt: np.ndarray, pred: np.ndarray, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU between the object (``gt == 1``) and a bool prediction, ignore pixels excluded.

    Returns:
        A value in [0, 1]; 1.0 when both boundary bands are empty.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} differs from gt shape {gt.shape}")
    dilation = _dilation(gt.shape, dilation_ratio)
    bands = [_boundary_crop(m, dilation) for m in (gt == 1, pred.astype(bool, copy=False))]
    present = [b for b in bands if b is not None]
    if not present:
        return 1.0
    # work inside the union of the two bands' boxes only
    top = min(b[1] for b in present)
    left = min(b[2] for b in present)
    bottom = max(b[1] + b[0].shape[0] for b in present)
    right = max(b[2] + b[0].shape[1] for b in present)
    valid = gt[top:bottom, left:right] != -1
    placed = []
    for band in bands:
        canvas = np.zeros((bottom - top, right - left), dtype=bool)
        if band is not None:
            crop, y, x = band
            canvas[y - top:y - top + crop.shape[0], x - left:x - left + crop.shape[1]] = crop
        placed.append(canvas & valid)
    union = np.count_nonzero(placed[0] | placed[1])
    return 1.0 if union == 0 else np.count_nonzero(placed[0] & placed[1]) / union


def _as_curve(ious: Sequence[float], max_clicks: int) -> np.ndarray:
    curve = np.asarray(ious, dtype=np.float64)[:max_clicks]
    if curve.ndim != 1 or curve.size == 0:
        raise ValueError(f"an IoU sequence must be a non-empty 1-D list, got shape {curve.shape}")
    return curve


def noc(ious: Sequence[float], threshold: float, max_clicks: int = 20) -> int:
    """Number of clicks to reach ``threshold``: the first 1-based k with IoU_k >= threshold, else max_clicks.

    Args:
        ious: IoU after click 1, 2, ... (only the first ``max_clicks`` count).
    """
    reached = np.flatnonzero(_as_curve(ious, max_clicks) >= threshold)
    return int(reached[0]) + 1 if reached.size else max_clicks


def _reached(ious: Sequence[float], threshold: float, max_clicks: int) -> bool:
    return bool(np.any(_as_curve(ious, max_clicks) >= threshold))


def nof(all_ious: Sequence[Sequence[float]], threshold: float, max_clicks: int = 20,
        ritm_compat: bool = False) -> int:
    """Number of failures: objects that never reach ``threshold`` within ``max_clicks`` clicks.

    With ``ritm_compat=True``, objects with NoC == max_clicks count (RITM's code; it also counts an
    object that reaches the threshold exactly at the last click).
    """
    if ritm_compat:
        return sum(noc(seq, threshold, max_clicks) == max_clicks for seq in all_ious)
    return sum(not _reached(seq, threshold, max_clicks) for seq in all_ious)


def miou_curve(all_ious: Sequence[Sequence[float]], max_clicks: int = 20) -> list[float]:
    """mIoU@k for k = 1..max_clicks: the mean over objects of the IoU after k clicks.

    Every sequence must hold at least ``max_clicks`` values (the runner always runs all clicks).
    """
    if not all_ious:
        raise ValueError("no objects to average")
    short = [len(seq) for seq in all_ious if len(seq) < max_clicks]
    if short:
        raise ValueError(f"{len(short)} IoU sequences are shorter than max_clicks={max_clicks} "
                         f"(e.g. length {short[0]}); run all clicks to compute mIoU@k")
    matrix = np.asarray([list(seq)[:max_clicks] for seq in all_ious], dtype=np.float64)
    return [float(v) for v in matrix.mean(axis=0)]


def summarize_click_ious(all_ious: Sequence[Sequence[float]], max_clicks: int = 20,
                         thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict[str, object]:
    """All click-protocol metrics of one dataset.

    Returns:
        A JSON-ready dict: ``num_objects``, ``max_clicks``, ``noc`` and ``nof`` (keyed by the
        threshold in percent, e.g. ``"90"``), ``miou`` (mIoU@1..max_clicks), ``5-miou`` (None if
        max_clicks < 5) and ``nof_ritm`` (RITM's counting, see :func:`nof`).
    """
    curve = miou_curve(all_ious, max_clicks)
    result: dict[str, object] = {"num_objects": len(all_ious), "max_clicks": max_clicks}
    result["noc"] = {_pct(t): float(np.mean([noc(s, t, max_clicks) for s in all_ious])) for t in thresholds}
    result["nof"] = {_pct(t): nof(all_ious, t, max_clicks) for t in thresholds}
    result["nof_ritm"] = {_pct(t): nof(all_ious, t, max_clicks, ritm_compat=True) for t in thresholds}
    result["miou"] = curve
    result["5-miou"] = curve[4] if max_clicks >= 5 else None
    return result


def mean_pairwise_iou(masks: Sequence[np.ndarray], valid: np.ndarray | None = None) -> float:
    """Stability score: the mean IoU over all unordered pairs of the given bool HxW masks.

    Pixels where ``valid`` is False are left out; two empty masks have IoU 1. A single mask gives 1.0.
    """
    if len(masks) < 2:
        return 1.0
    flat = np.stack([m.reshape(-1) for m in masks]).astype(bool)
    if valid is not None:
        flat = flat[:, valid.reshape(-1)]
    counts = flat.sum(axis=1).astype(np.float64)
    as_float = flat.astype(np.float32)
    inter = as_float @ as_float.T
    union = counts[:, None] + counts[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    upper = np.triu_indices(len(masks), k=1)
    return float(pair_iou[upper].mean())


def _pct(threshold: float) -> str:
    return f"{round(threshold * 100):d}"
