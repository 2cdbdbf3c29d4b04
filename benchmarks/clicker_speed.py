"""Cost per click of the click simulator with exact integer distances (``clicksam.distance``,
SciPy's exact feature transform) against the OpenCV float32 transform it replaced, on 480x640
masks, and how often the two pick different clicks.

    OMP_NUM_THREADS=1 python benchmarks/clicker_speed.py --scenes 10 --clicks 20 --repeats 5 \\
        --out benchmarks/results/clicker_speed_$(date +%Y%m%d_%H%M).json

Inputs: ``make_scene(0, i, size=(480, 640))`` targets; each gets a 20-click sequence from the
exact simulator, with predictions from ``eval_speed.fake_scores`` (the object eroded or dilated
by a few pixels plus spurious blobs). Every (gt, prediction, earlier clicks) state is prepared
before timing, and both simulators time ``find_next_click`` on the same states, interleaved
repeat by repeat so that machine load hits both alike. Reported: the median over repeats of the
mean wall and CPU time per click, and their ratio (new / old; on a loaded machine the CPU time is
the steadier one); the same for a whole 480x640 map (old: ``cv2.distanceTransform``, new:
``squared_distance_map``, as ``error_distance_maps`` computes) and for the training path
(``squared_distance_maps`` on 16 maps of 256x256 against OpenCV map by map).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import scipy
import torch

from clicksam.distance import squared_distance_map
from clicksam.eval.clicker import Click, find_next_click, validate_gt
from clicksam.train.distance import squared_distance_maps
from clicksam.train.synthetic import make_scene
from eval_speed import fake_scores

SIZE = (480, 640)  # H, W


def _opencv_distance(mask: np.ndarray) -> np.ndarray:
    """The replaced transform: float32 distances of the 1-px zero-padded mask (RITM's call)."""
    padded = cv2.copyMakeBorder(np.ascontiguousarray(mask).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 0)[1:-1, 1:-1]


def _opencv_region(mask: np.ndarray, clicks: Sequence[Click]) -> tuple[float, int, int]:
    """(maximum, x, y) of the first maximum of the old float32 map on the region's bounding box."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0.0, -1, -1
    cols = np.flatnonzero(mask.any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    dist = _opencv_distance(mask[top:rows[-1] + 1, left:cols[-1] + 1])
    for c in clicks:
        if 0 <= c.y - top < dist.shape[0] and 0 <= c.x - left < dist.shape[1]:
            dist[c.y - top, c.x - left] = 0.0
    row, col = divmod(int(np.argmax(dist)), dist.shape[1])
    return float(dist[row, col]), left + col, top + row


def opencv_next_click(gt: np.ndarray, pred: np.ndarray, clicks: Sequence[Click]) -> Click | None:
    """The simulator as it was before the exact distances (the baseline of this benchmark)."""
    validate_gt(gt)  # the input checks of the simulator, so both sides do the same work around the transform
    if pred.dtype != bool or pred.shape != gt.shape:
        raise ValueError("pred must be a bool array of the shape of gt")
    fn_max, fn_x, fn_y = _opencv_region((gt == 1) & ~pred, clicks)
    fp_max, fp_x, fp_y = _opencv_region((gt == 0) & pred, clicks)
    if fn_max == 0.0 and fp_max == 0.0:
        return None
    return Click(fn_x, fn_y, True) if fn_max > fp_max else Click(fp_x, fp_y, False)


def prepare_states(scenes: int, clicks: int) -> list[tuple[np.ndarray, np.ndarray, list[Click]]]:
    """(gt, prediction, earlier clicks) before each click of each scene's sequence."""
    rng = np.random.default_rng(0)
    states = []
    for i in range(scenes):
        gt = make_scene(0, i, size=SIZE).mask.astype(np.int64)
        pred, done = np.zeros(gt.shape, dtype=bool), []
        for k in range(clicks):
            states.append((gt, pred, list(done)))
            click = find_next_click(gt, pred, done)
            if click is not None:
                done.append(click)
            pred = fake_scores(gt, k, rng) > 0.49
    return states


def interleaved(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds of each function, the functions run in turn in every repeat."""
    for fn in fns.values():
        fn()  # warm-up
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {k: {"wall_s": statistics.median(wall[k]), "cpu_s": statistics.median(cpu[k]),
                "wall_all_s": wall[k]} for k in fns}


def compare(timed: dict[str, dict[str, float]], per: int, unit: str) -> dict[str, float]:
    """Per-item milliseconds of 'old' and 'new' and the ratios new / old."""
    out = {}
    for key in ("wall_s", "cpu_s"):
        old, new = timed["old"][key] / per, timed["new"][key] / per
        out[f"old_ms_per_{unit}_{key[:-2]}"] = 1000 * old
        out[f"new_ms_per_{unit}_{key[:-2]}"] = 1000 * new
        out[f"ratio_{key[:-2]}"] = new / old
    return out


def disagreements(states) -> dict[str, int]:
    """States where the two simulators pick different clicks, and how many are exact ties."""
    differ = ties = 0
    for gt, pred, clicks in states:
        old, new = opencv_next_click(gt, pred, clicks), find_next_click(gt, pred, clicks)
        if old == new:
            continue
        differ += 1
        region = {True: (gt == 1) & ~pred, False: (gt == 0) & pred}
        sq = {p: squared_distance_map(r) for p, r in region.items()}
        if old is not None and new is not None:
            ties += int(sq[old.positive][old.y, old.x] == sq[new.positive][new.y, new.x])
    return {"states": len(states), "different_clicks": differ, "of_which_exact_ties": ties}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the numbers here as JSON (one file per run)")
    args = parser.parse_args()

    load_before = list(os.getloadavg())
    states = prepare_states(args.scenes, args.clicks)
    clicker = interleaved({
        "old": lambda: [opencv_next_click(*s) for s in states],
        "new": lambda: [find_next_click(*s) for s in states],
    }, args.repeats)
    whole = states[0][0] == 1  # a whole 480x640 map (its cost does not depend on the object's size)
    transform = interleaved({
        "old": lambda: [_opencv_distance(whole) for _ in range(10)],
        "new": lambda: [squared_distance_map(whole) for _ in range(10)],
    }, args.repeats)
    objects = [cv2.resize((gt == 1).astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST)
               for gt, _, _ in states[::args.clicks]]
    maps = torch.from_numpy(np.stack([objects[i % len(objects)] for i in range(16)]) == 1)
    training = interleaved({
        "old": lambda: [_opencv_distance(m) for m in maps.numpy()],
        "new": lambda: squared_distance_maps(maps),
    }, args.repeats)
    result = {
        "benchmark": "clicker_speed",
        "image_size_hw": list(SIZE),
        "scenes": args.scenes, "clicks_per_scene": args.clicks, "repeats": args.repeats,
        "per_click": compare(clicker, len(states), "click"),
        "whole_map": compare(transform, 10, "map"),
        "training_16_maps_256": compare(training, 1, "batch"),
        "agreement": disagreements(states),
        "versions": {"scipy": scipy.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
        "opencv_threads": cv2.getNumThreads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "platform": platform.platform(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    pc = result["per_click"]
    print(f"{SIZE[0]}x{SIZE[1]}, {len(states)} clicks: old {pc['old_ms_per_click_wall']:.2f} ms, "
          f"new {pc['new_ms_per_click_wall']:.2f} ms per click (wall; ratio {pc['ratio_wall']:.2f}, "
          f"CPU ratio {pc['ratio_cpu']:.2f}); whole map CPU ratio {result['whole_map']['ratio_cpu']:.2f}; "
          f"training maps CPU ratio {result['training_16_maps_256']['ratio_cpu']:.2f}; {result['agreement']}")
    if args.out is not None:
        from clicksam.io.atomic import atomic_write_json

        atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
