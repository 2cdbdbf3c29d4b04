"""Added time per click of SAM-REF over plain SAM decoding, on this CPU.

Runs the same clicks through an ``InteractiveSession`` with ``method="sam"`` and with
``method="sam-ref"`` on one image, interleaved click by click so both see the same machine
load, and reports medians per click: SAM's step (prompt encoder + decoder + resize), the
SAM-REF step, their difference, and SAM-REF's parts (GFR = prompt map + GlobalDiff at the
1024 frame; LFR = window, selector, crops, PatchDiff, paste), plus the once-per-image GFR
context (image stem + embedding projections, paid on the first click of an image).

The refiners get random weights (the cost does not depend on the values, but non-zero
weights make the detail windows realistic). The per-click work does not depend on the ViT
size, so the default ``tiny`` model skips a 30 s ViT-B encode; pass ``--model vit_b`` to
check.

    .venv/bin/python benchmarks/sam_ref_speed.py --threads 2 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from clicksam import InteractiveSession, SamPredictor, build_sam
from clicksam.methods.sam_ref import SamRefConfig, attach

CLICKS = [  # (x, y, positive) on a 1200×900 image with an ellipse object
    (600, 450, True), (300, 450, True), (900, 450, True), (600, 200, False), (450, 600, True),
    (750, 300, True), (1000, 700, False), (200, 200, False), (620, 690, True), (580, 220, True),
]


def make_image(height: int = 900, width: int = 1200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    rows, cols = np.mgrid[0:height, 0:width]
    inside = ((cols - width / 2) / (width / 3)) ** 2 + ((rows - height / 2) / (height / 3)) ** 2 <= 1
    image[inside] = (200, 60, 40)
    return image


def randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))


def run(model_name: str, rounds: int, config: SamRefConfig) -> dict:
    model = build_sam(model_name, random_weights=True)  # per-click speed only: random weights on purpose
    attach(model, config)
    randomize(model.sam_ref)
    predictor = SamPredictor(model)
    start = time.perf_counter()
    predictor.set_image(make_image())
    encode_s = time.perf_counter() - start
    times: dict[str, list[float]] = {
        k: [] for k in ("sam", "sam_ref", "added", "gfr", "lfr", "stage", "cpu_sam", "cpu_added")
    }
    context_s: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(rounds):
            plain = InteractiveSession(predictor, method="sam")
            refined = InteractiveSession(predictor, method="sam-ref")
            stage = refined.pipeline.stages[-1]
            for x, y, positive in CLICKS:
                cpu0 = time.process_time()
                plain.add_click(x, y, positive)
                cpu1 = time.process_time()
                refined.add_click(x, y, positive)
                cpu2 = time.process_time()
                t_sam, t_ref = plain.last_latency_s, refined.last_latency_s
                parts = stage.last_timings
                if "context" in parts:  # first click on the image: not a per-click cost
                    context_s.append(parts["context"])
                    t_ref -= parts["context"]
                else:
                    # CPU seconds of this process: robust to other processes' load (with one
                    # thread it is the work itself; with more it includes OpenMP spinning)
                    times["cpu_sam"].append(cpu1 - cpu0)
                    times["cpu_added"].append((cpu2 - cpu1) - (cpu1 - cpu0))
                times["sam"].append(t_sam)
                times["sam_ref"].append(t_ref)
                times["added"].append(t_ref - t_sam)
                times["gfr"].append(parts["gfr"])
                times["lfr"].append(parts["lfr"])
                times["stage"].append(parts["total"] - parts.get("context", 0.0))
    return {
        "model": model_name,
        "threads": torch.get_num_threads(),
        "clicks": len(times["sam"]),
        "config": config.to_dict(),
        "refiner_parameters": sum(p.numel() for p in model.sam_ref.parameters()),
        "encode_s": encode_s,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "gfr_context_s": statistics.median(context_s) if context_s else None,
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="registry name (per-click cost is the same for all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the 10 clicks")
    parser.add_argument("--width", type=int, default=SamRefConfig.width)
    parser.add_argument("--patch-width", type=int, default=SamRefConfig.patch_width)
    parser.add_argument("--blocks", type=int, default=SamRefConfig.num_blocks)
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = SamRefConfig(width=args.width, patch_width=args.patch_width, num_blocks=args.blocks)
    with torch.no_grad():  # (a model built under inference_mode cannot cache its dense PE)
        result = run(args.model, args.rounds, config)
    med = result["median_s"]
    print(f"{result['model']}, {result['threads']} threads, {result['clicks']} clicks, "
          f"load average {result['load_average'][0]:.2f}, refiners "
          f"{result['refiner_parameters'] / 1e3:.0f} k parameters")
    print(f"  plain SAM step      {med['sam']:.3f} s (median per click)")
    print(f"  SAM-REF step        {med['sam_ref']:.3f} s")
    print(f"  added per click     {med['added']:+.3f} s (median of per-click differences)")
    print(f"    GFR               {med['gfr']:.3f} s")
    print(f"    LFR               {med['lfr']:.3f} s")
    print(f"    whole stage       {med['stage']:.3f} s (GFR + LFR + resize to the image)")
    print(f"  GFR context         {result['gfr_context_s']:.3f} s once per image (first click)")
    print(f"  CPU time: SAM step {med['cpu_sam']:.3f} s, added by SAM-REF {med['cpu_added']:+.3f} s "
          "(process CPU seconds; with --threads 1 a load-independent measure of the work)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
