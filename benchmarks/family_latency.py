"""Encoder and per-click latency of the model families side by side: SAM 2.1 (Hiera-T, Hiera-S),
HQ-SAM ViT-B and SAM ViT-B (the baseline), on the same image and threads in one run. RANDOM
WEIGHTS (speed does not depend on them); every figure is also given as a ratio to SAM ViT-B
(``--baseline``) measured in the same run, so that a loaded machine changes the ratios less than the seconds.

    python benchmarks/family_latency.py --repeats 5 --click-repeats 20 --threads 2

Every model runs through ``clicksam.SamPredictor`` (``build_sam(name, random_weights=True)``).
Encoder = ``set_image``: image -> model input -> feature bundle (SAM: resize the long side + pad;
SAM 2: resize to a square). Per click = ``predict``: prompts to the model frame + prompt encoder +
decoder + masks at the image size (first click: one positive point, multimask; later click: two
points and the previous low-res logits, single mask). HQ-SAM reuses its fused image feature from
one click to the next, as in interactive use. The models run round-robin within each repeat
(medians reported), so they share the machine's load. One JSON file per run is written to
``benchmarks/results/family_latency_<tag>.json`` (the tag defaults to the UTC time and threads).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_MODELS = ("vit_b", "sam2.1_hiera_t", "sam2.1_hiera_s", "hq_vit_b")
BASELINE = "vit_b"
FIRST_CLICK = np.array([[288.0, 140.0]]), np.array([1])
LATER_CLICKS = np.array([[288.0, 140.0], [162.0, 323.0]]), np.array([1, 0])


class Runner:
    """One model: ``set_image(image)`` then ``click(points, labels, mask_input, multimask) -> low-res logits``."""

    def __init__(self, name: str, set_image: Callable[[np.ndarray], None], click: Callable[..., np.ndarray],
                 parameters: int, family: str) -> None:
        self.name, self.set_image, self.click, self.parameters, self.family = name, set_image, click, parameters, family


def make_runner(name: str) -> Runner:
    """A predictor on ``name`` (any family) with random weights."""
    import clicksam

    model = clicksam.build_sam(name, random_weights=clicksam.get_config(name).has_official_weights)
    predictor = clicksam.SamPredictor(model)

    def click(points, labels, mask_input: Optional[np.ndarray], multimask: bool) -> np.ndarray:
        return predictor.predict(points, labels, mask_input=mask_input, multimask_output=multimask)[2]

    return Runner(name, predictor.set_image, click, _count(model), model.family)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def round_robin(runners: list[Runner], fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Times of ``fns[name]()`` for every runner, the runners taken in turn within each repeat
    (the order rotates), after ``warmup`` untimed rounds."""
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    for i in range(warmup + repeats):
        shift = i % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            start = time.perf_counter()
            fns[runner.name]()
            if i >= warmup:
                times[runner.name].append(time.perf_counter() - start)
    return times


def summarise(times: dict[str, list[float]], baseline: str) -> dict[str, dict]:
    base = statistics.median(times[baseline])
    return {
        name: {"median_s": statistics.median(t), "ratio_to_baseline": statistics.median(t) / base, "runs_s": t}
        for name, t in times.items()
    }


def load_average() -> Optional[list[float]]:
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="registered names; must include the baseline")
    parser.add_argument("--baseline", default=BASELINE, help="the model every ratio is taken against")
    parser.add_argument("--repeats", type=int, default=5, help="timed encoder runs per model")
    parser.add_argument("--click-repeats", type=int, default=20, help="timed clicks per model and case")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--image", type=Path, default=None, help="default: the package's example coffee.jpg")
    parser.add_argument("--tag", default=None, help="result file tag (default: UTC time and threads)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.baseline not in args.models:
        parser.error(f"--models must include the baseline {args.baseline}")
    torch.set_num_threads(args.threads)
    started = dt.datetime.now(dt.timezone.utc)
    tag = args.tag or f"{started.strftime('%Y%m%dT%H%M%SZ')}_{torch.get_num_threads()}threads"
    out = args.out_dir / f"family_latency_{tag}.json"
    if out.exists():
        parser.error(f"{out} exists; results are never overwritten (give another --tag)")
    from clicksam.commands.demo import EXAMPLES
    from clicksam.images import read_image

    args.image = args.image or EXAMPLES / "coffee.jpg"
    image = read_image(args.image)
    torch.manual_seed(0)
    runners = [make_runner(name) for name in args.models]
    results: dict = {
        "weights": "random (speed only; no model here was trained)",
        "models": {r.name: {"parameters": r.parameters, "family": r.family} for r in runners},
        "baseline": args.baseline, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "image": args.image.name,
        "image_size": list(image.shape[:2]), "started_utc": started.isoformat(timespec="seconds"),
        "load_average_before": load_average(),
    }
    with torch.inference_mode():
        enc = round_robin(runners, {r.name: (lambda r=r: r.set_image(image)) for r in runners}, args.repeats, warmup=1)
        results["encoder"] = summarise(enc, args.baseline)
        low_res = {r.name: r.click(*FIRST_CLICK, None, False) for r in runners}
        cases = {
            "first_click_multimask": {r.name: (lambda r=r: r.click(*FIRST_CLICK, None, True)) for r in runners},
            "later_click_mask_input": {r.name: (lambda r=r: r.click(*LATER_CLICKS, low_res[r.name], False)) for r in runners},
        }
        results["per_click"] = {
            case: summarise(round_robin(runners, fns, args.click_repeats, warmup=3), args.baseline) for case, fns in cases.items()
        }
    results["load_average_after"] = load_average()
    for name in args.models:
        line = f"{name:>16}: encoder {results['encoder'][name]['median_s']:.2f} s (x{results['encoder'][name]['ratio_to_baseline']:.2f})"
        for case, figures in results["per_click"].items():
            line += f", {case} {figures[name]['median_s'] * 1000:.0f} ms (x{figures[name]['ratio_to_baseline']:.2f})"
        print(line)
    from clicksam.io.atomic import atomic_write_json

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, results, indent=2)
    print(f"written {out} (random weights; load average before {results['load_average_before']}, after {results['load_average_after']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
