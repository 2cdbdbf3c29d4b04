"""Cost of the evaluation machinery per click on DAVIS (854x480): the click simulator and the
metrics, without any model. Goal: at most 10 ms per click on the 2-core CPU.

    python benchmarks/eval_speed.py --data-root ../shared/data --objects 20 --repeats 5 \
        --out benchmarks/results/eval_speed.json

Per click = threshold the score map (> 0.49) + IoU + next click (the farthest pixels of the two
error regions, exact integer distances: `clicksam.distance`).
Predictions are prepared before timing: the object eroded or dilated by a few pixels with some
spurious blobs, so the error regions look like a real model's. The boundary IoU (only with
``--boundary`` in ``clicksam eval``) is timed separately. Reported: the median over repeats of the
mean time per click.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from clicksam.eval.clicker import find_next_click
from clicksam.eval.datasets import load_dataset
from clicksam.eval.metrics import boundary_iou, iou


def fake_scores(gt: np.ndarray, click_index: int, rng: np.random.Generator) -> np.ndarray:
    """HxW float32 probabilities: the object eroded/dilated by a few pixels plus random blobs."""
    obj = (gt == 1).astype(np.uint8)
    amount = int(rng.integers(-6, 7))
    kernel = np.ones((3, 3), np.uint8)
    if amount > 0:
        obj = cv2.erode(obj, kernel, iterations=amount)
    elif amount < 0:
        obj = cv2.dilate(obj, kernel, iterations=-amount)
    height, width = gt.shape
    for _ in range(max(0, 3 - click_index // 5)):
        cx, cy = int(rng.integers(width)), int(rng.integers(height))
        cv2.circle(obj, (cx, cy), int(rng.integers(5, 40)), int(rng.integers(0, 2)), -1)
    return obj.astype(np.float32)


def time_per_click(gts, scores, repeats: int, with_boundary: bool) -> list[float]:
    """Mean seconds per click of each repeat."""
    per_repeat = []
    clicks_per_object = len(scores[0])
    for _ in range(repeats):
        start = time.perf_counter()
        for gt, object_scores in zip(gts, scores):
            clicks = []
            pred = np.zeros(gt.shape, dtype=bool)
            for score in object_scores:
                click = find_next_click(gt, pred, clicks)
                if click is not None:
                    clicks.append(click)
                pred = score > 0.49
                iou(gt, pred)
                if with_boundary:
                    boundary_iou(gt, pred)
        per_repeat.append((time.perf_counter() - start) / (len(gts) * clicks_per_object))
    return per_repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--objects", type=int, default=20, help="DAVIS objects to use (default 20)")
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the numbers here as JSON")
    args = parser.parse_args()

    dataset = load_dataset("DAVIS", args.data_root)
    rng = np.random.default_rng(0)
    gts = [dataset.decode_gt(obj) for obj in dataset.objects[: args.objects]]
    scores = [[fake_scores(gt, k, rng) for k in range(args.clicks)] for gt in gts]
    time_per_click(gts[:1], scores[:1], 1, True)  # warm-up

    plain = time_per_click(gts, scores, args.repeats, with_boundary=False)
    boundary = time_per_click(gts, scores, args.repeats, with_boundary=True)
    result = {
        "benchmark": "eval_speed",
        "image_size": list(gts[0].shape[::-1]),
        "objects": len(gts),
        "clicks_per_object": args.clicks,
        "repeats": args.repeats,
        "ms_per_click_median": 1000 * statistics.median(plain),
        "ms_per_click_all": [1000 * v for v in plain],
        "ms_per_click_with_boundary_iou_median": 1000 * statistics.median(boundary),
        "goal_ms": 10.0,
        "opencv_threads": cv2.getNumThreads(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "platform": platform.platform(),
    }
    print(f"DAVIS {result['image_size'][0]}x{result['image_size'][1]}: simulator + metrics "
          f"{result['ms_per_click_median']:.2f} ms per click (median of {args.repeats}; "
          f"{result['ms_per_click_with_boundary_iou_median']:.2f} ms with boundary IoU); goal <= 10 ms")
    if args.out is not None:
        from clicksam.io.atomic import atomic_write_json

        atomic_write_json(args.out, result)
    return 0 if result["ms_per_click_median"] <= 10.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
