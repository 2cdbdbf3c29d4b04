"""Evaluation rows of the small-scale experiments, on ``clicksam.eval``.

A *row* is a (model, method string) pair evaluated on ``count`` held-out scenes of a family with
the click protocol (``clicksam.eval.loop.evaluate_clicks``, SPEC §7.1, 20 clicks, boundary IoU
too) or Stable-SAM's prompt protocol (``clicksam.eval.prompts.evaluate_prompts``), through
``SamSegmenter`` (the interaction engine, as a session runs it). The clicks are exact and
deterministic, so a row's outcome depends only on the weights, the method and the scenes: rows are
kept under ``experiments/cache/rows/`` by (weights digest, method, protocol, scenes) and shared by
every script and seed that evaluates the same thing (the base's ``sam`` row, say).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clicksam import SamPredictor
from clicksam.cache import EmbeddingCache
from clicksam.eval.loop import evaluate_clicks
from clicksam.eval.metrics import summarize_click_ious
from clicksam.eval.prompts import evaluate_prompts
from clicksam.eval.sam_segmenter import SamSegmenter
from clicksam.io.atomic import atomic_write_text
from clicksam.train.synthetic import make_scene

ROWS_VERSION = 1  # bump when the protocols below change (invalidates cached rows)
PROMPT_TYPES = ("noisy_box", "point1", "point3", "gt_box")


def weights_digest(model: torch.nn.Module) -> str:
    """A hash of every tensor of ``model`` (base and stages)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _cache_dir() -> Path:
    from common import CACHE  # experiments/common.py (the scripts put experiments/ on sys.path)

    return CACHE / "rows"


def _segmenter(model: torch.nn.Module, method: str, cache: EmbeddingCache) -> SamSegmenter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # untrained identity stages of a diagnostic row
        return SamSegmenter(SamPredictor(model, cache=cache), method)


def click_row(model: torch.nn.Module, method: str, family: int, count: int, max_clicks: int = 20) -> dict[str, Any]:
    """The click protocol on scenes 0..count-1 of ``family``: the click summary
    (``summarize_click_ious``) plus boundary IoU and the per-scene IoU curves."""
    key = {"protocol": "clicks", "weights": weights_digest(model), "method": method, "family": family,
           "count": count, "max_clicks": max_clicks, "version": ROWS_VERSION}
    return _cached(key, lambda: _click_row(model, method, family, count, max_clicks))


def _click_row(model, method: str, family: int, count: int, max_clicks: int) -> dict[str, Any]:
    segmenter = _segmenter(model, method, EmbeddingCache(None, max_items=2))
    curves, boundary = [], []
    for i in range(count):
        scene = make_scene(family, i)
        segmenter.set_image(scene.image, f"scene{i}")
        with torch.inference_mode():
            result = evaluate_clicks(segmenter, scene.mask.astype(np.int64), f"scene{i}", max_clicks,
                                     with_boundary=True)
        curves.append(result.ious)
        boundary.append(result.boundary_ious)
    summary = summarize_click_ious(curves, max_clicks)
    b = np.asarray(boundary)
    summary["boundary_iou_at"] = {str(k): float(b[:, k - 1].mean()) for k in (1, 3, 5, 10, 20) if k <= max_clicks}
    summary["boundary_iou_1to5"] = float(b[:, :5].mean())
    summary["boundary_miou_curve"] = b.mean(0).tolist()
    summary["per_scene_iou"] = curves
    return summary


def prompt_row(model: torch.nn.Module, method: str, family: int, count: int, num_prompts: int,
               box_noise: float = 0.4, seed: int | None = None) -> dict[str, dict[str, Any]]:
    """Stable-SAM's prompt protocol on scenes 0..count-1 of ``family``, per prompt type: mIoU,
    per-scene mIoU, boundary mIoU and stability (mean pairwise IoU of the predictions). The
    prompts are drawn from ``seed`` (default: the family)."""
    seed = family if seed is None else seed
    key = {"protocol": "prompts", "weights": weights_digest(model), "method": method, "family": family,
           "count": count, "num_prompts": num_prompts, "box_noise": box_noise, "seed": seed, "version": ROWS_VERSION}
    return _cached(key, lambda: _prompt_row(model, method, family, count, num_prompts, box_noise, seed))


def _prompt_row(model, method: str, family: int, count: int, num_prompts: int, box_noise: float,
                seed: int) -> dict[str, dict[str, Any]]:
    segmenter = _segmenter(model, method, EmbeddingCache(None, max_items=2))
    entries: dict[str, list] = {t: [] for t in PROMPT_TYPES}
    for i in range(count):
        scene = make_scene(family, i)
        segmenter.set_image(scene.image, f"scene{i}")
        with torch.inference_mode():
            entry = evaluate_prompts(segmenter, scene.mask.astype(np.int64), f"scene{i}", PROMPT_TYPES, num_prompts,
                                     box_noise, seed, keep_prompts=False)
        for t in PROMPT_TYPES:
            entries[t].append(entry["prompts"][t])
    summary = {}
    for t, rows in entries.items():
        stab = [e["stability"] for e in rows if e["stability"] is not None]
        summary[t] = {"miou": float(np.mean([np.mean(e["ious"]) for e in rows])),
                      "per_scene_miou": [float(np.mean(e["ious"])) for e in rows],
                      "boundary_miou": float(np.mean([np.mean(e["boundary_ious"]) for e in rows])),
                      "stability": float(np.mean(stab)) if stab else float("nan")}
    return summary


def _cached(key: dict[str, Any], compute) -> Any:
    path = _cache_dir() / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]}.json"
    if path.is_file():
        return json.loads(path.read_text())["row"]
    row = compute()
    if os.environ.get("CLICKSAM_EXPERIMENTS_NO_ROW_CACHE") != "1":
        atomic_write_text(path, json.dumps({"key": key, "row": row}))  # NaN allowed (a GT box has no stability)
    return row


def click_rows(rows: dict[str, tuple[torch.nn.Module, str]], family: int, count: int) -> dict[str, Any]:
    """``click_row`` for every ``name -> (model, method)``."""
    return {name: click_row(model, method, family, count) for name, (model, method) in rows.items()}
