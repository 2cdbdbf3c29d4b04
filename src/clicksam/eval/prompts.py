"""Stable-SAM's prompt-robustness protocol (SPEC §3, last item).

Per object and prompt type, ``num_prompts`` seeded prompts are drawn and each is given to the
segmenter on its own (no previous state):

- ``noisy_box``: the ground-truth box with its centre shifted by U(-s, s)·(w/2, h/2) and its size
  changed by U(-s, s)·(w, h) (s = the box noise), clipped to the image; it may cut the object.
- ``point1`` / ``point3``: 1 or 3 positive points drawn uniformly from the object's pixels.
- ``gt_box``: the tight box of the object; deterministic, so it runs once.

Metrics: mIoU, boundary mIoU (dilation ratio 0.02) and stability, the mean pairwise IoU of the
predictions of one object and prompt type. Seeds derive from (seed, object id, prompt type), so an
object's prompts do not depend on the order of evaluation or on resuming.
"""
from __future__ import annotations

import time
import zlib
from typing import Any, Sequence

import numpy as np

from .clicker import Click, validate_gt
from .metrics import boundary_iou, iou, mean_pairwise_iou
from .segmenter import Prompt, Segmenter

__all__ = ["PROMPT_TYPES", "gt_box", "noisy_box", "random_points", "prompt_rng", "make_prompts",
           "evaluate_prompts"]

PROMPT_TYPES: tuple[str, ...] = ("noisy_box", "point1", "point3", "gt_box")

Box = tuple[float, float, float, float]


def gt_box(gt: np.ndarray) -> Box:
    """Tight box ``(x0, y0, x1, y1)`` of the object pixels (``gt == 1``); x1, y1 are inclusive pixel indices."""
    rows = np.flatnonzero(np.any(gt == 1, axis=1))
    cols = np.flatnonzero(np.any(gt == 1, axis=0))
    if rows.size == 0:
        raise ValueError("the ground truth has no object pixel: no box to draw")
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])


def noisy_box(box: Box, image_size: tuple[int, int], noise: float, rng: np.random.Generator) -> Box:
    """Perturb an XYXY box (SPEC §3) and clip it to an image of ``image_size`` = (H, W).

    Width and height are ``x1 - x0`` and ``y1 - y0``; the result keeps x1 >= x0 + 1 and y1 >= y0 + 1
    where the image allows.
    """
    if noise < 0:
        raise ValueError(f"box noise must be >= 0, got {noise}")
    x0, y0, x1, y1 = box
    width, height = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    shift = rng.uniform(-noise, noise, size=2)
    scale = rng.uniform(-noise, noise, size=2)
    cx, cy = cx + shift[0] * width / 2, cy + shift[1] * height / 2
    new_w, new_h = max(width + scale[0] * width, 1.0), max(height + scale[1] * height, 1.0)
    img_h, img_w = image_size
    nx0 = float(np.clip(cx - new_w / 2, 0, img_w - 1))
    ny0 = float(np.clip(cy - new_h / 2, 0, img_h - 1))
    nx1 = float(np.clip(cx + new_w / 2, 0, img_w - 1))
    ny1 = float(np.clip(cy + new_h / 2, 0, img_h - 1))
    if nx1 <= nx0:
        nx0, nx1 = (nx0 - 1, nx0) if nx0 >= 1 else (nx0, min(nx0 + 1, img_w - 1))
    if ny1 <= ny0:
        ny0, ny1 = (ny0 - 1, ny0) if ny0 >= 1 else (ny0, min(ny0 + 1, img_h - 1))
    return nx0, ny0, nx1, ny1


def random_points(gt: np.ndarray, count: int, rng: np.random.Generator) -> tuple[Click, ...]:
    """``count`` distinct positive clicks drawn uniformly from the object pixels (fewer if it is smaller)."""
    rows, cols = np.nonzero(gt == 1)
    if rows.size == 0:
        raise ValueError("the ground truth has no object pixel to put a point on")
    picks = rng.choice(rows.size, size=min(count, rows.size), replace=False)
    return tuple(Click(int(cols[i]), int(rows[i]), True) for i in picks)


def prompt_rng(seed: int, object_id: str, prompt_type: str) -> np.random.Generator:
    """The generator of one object's prompts of one type (independent of evaluation order)."""
    key = zlib.crc32(f"{object_id}\x00{prompt_type}".encode("utf-8"))
    return np.random.default_rng([int(seed), key])


def make_prompts(gt: np.ndarray, object_id: str, prompt_type: str, num_prompts: int = 20,
                 box_noise: float = 0.4, seed: int = 0) -> list[Prompt]:
    """The seeded prompts of one object and prompt type (1 for ``gt_box``)."""
    if prompt_type not in PROMPT_TYPES:
        raise ValueError(f"unknown prompt type {prompt_type!r}; choose from {', '.join(PROMPT_TYPES)}")
    box = gt_box(gt)
    if prompt_type == "gt_box":
        return [Prompt(box=box)]
    rng = prompt_rng(seed, object_id, prompt_type)
    if prompt_type == "noisy_box":
        return [Prompt(box=noisy_box(box, gt.shape, box_noise, rng)) for _ in range(num_prompts)]
    count = 1 if prompt_type == "point1" else 3
    return [Prompt(clicks=random_points(gt, count, rng)) for _ in range(num_prompts)]


def _prompt_to_json(prompt: Prompt) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if prompt.box is not None:
        out["box"] = [round(float(v), 3) for v in prompt.box]
    if prompt.clicks:
        out["clicks"] = [c.to_list() for c in prompt.clicks]
    return out


def evaluate_prompts(segmenter: Segmenter, gt: np.ndarray, object_id: str,
                     prompt_types: Sequence[str] = PROMPT_TYPES, num_prompts: int = 20,
                     box_noise: float = 0.4, seed: int = 0, keep_prompts: bool = True) -> dict[str, Any]:
    """Run the prompt protocol on one object of the image last given to ``segmenter.set_image``.

    Returns:
        The JSON line for the object: ``object_id``, ``seconds``, ``n_steps`` and ``prompts`` =
        {type: {"ious": [...], "boundary_ious": [...], "stability": float, "prompts": [...]}}.
    """
    validate_gt(gt)
    valid = gt != -1
    per_type: dict[str, Any] = {}
    steps = 0
    start = time.perf_counter()
    for prompt_type in prompt_types:
        prompts = make_prompts(gt, object_id, prompt_type, num_prompts, box_noise, seed)
        masks, ious, boundaries = [], [], []
        for prompt in prompts:
            segmenter.reset(object_id)
            mask = segmenter.to_mask(segmenter.step(prompt, None), gt.shape)
            masks.append(mask)
            ious.append(iou(gt, mask))
            boundaries.append(boundary_iou(gt, mask))
            steps += 1
        entry: dict[str, Any] = {
            "ious": ious,
            "boundary_ious": boundaries,
            "stability": mean_pairwise_iou(masks, valid) if len(masks) > 1 else None,
        }
        if keep_prompts:
            entry["prompts"] = [_prompt_to_json(p) for p in prompts]
        per_type[prompt_type] = entry
    return {"object_id": object_id, "seconds": time.perf_counter() - start, "n_steps": steps,
            "prompts": per_type}
