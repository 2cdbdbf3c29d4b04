"""FocSAM speed on this machine: the refiner (small focus box, whole canvas) and the per-click
time after the refocus against plain SAM.

The decoder is the same for every model size, so the per-click comparison uses the ``tiny``
model with a random embedding (no encoder run); the refiner has FocSAM's full size (12 blocks,
25.4 M parameters) with random weights. Reported numbers are medians over ``--repeats`` runs;
SAM and FocSAM clicks are interleaved so that machine load hits both alike.

    python benchmarks/focsam_speed.py --threads 2 --repeats 5 --out focsam_speed.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import torch


def _median_time(fn, repeats: int) -> tuple[float, list[float], float]:
    """Median wall seconds, all wall times, and the median process CPU seconds (which a loaded
    machine inflates much less than wall time; with one thread it is the work itself)."""
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), times, statistics.median(cpu)


def refiner_times(repeats: int) -> dict[str, dict[str, float]]:
    from clicksam.methods.focsam import FocusRefiner, focus_cells

    torch.manual_seed(0)
    refiner = FocusRefiner().eval()
    embedding, token = torch.randn(1, 256, 64, 64), torch.randn(1, 1, 256)
    small = torch.full((1, 1, 256, 256), -4.0)
    small[0, 0, 100:120, 130:150] = 4.0  # an 80-pixel object in the 1024 frame
    whole = torch.full((1, 1, 256, 256), -4.0)  # empty coarse mask → whole canvas
    out = {}
    with torch.inference_mode():
        for name, logits in (("small_box", small), ("whole_canvas", whole)):
            cells = focus_cells(logits, (1.4, 1.4))
            median, times, cpu = _median_time(lambda lg=logits: refiner(embedding, lg, token), repeats)
            out[name] = {"median_s": median, "min_s": min(times), "cpu_s": cpu, "cells_on": int(cells.sum())}
    return out


def per_click_times(clicks: int, repeats: int) -> dict[str, float]:
    from clicksam import InteractiveSession, SamPredictor, build_sam

    torch.manual_seed(0)
    model = build_sam("tiny", methods=["focsam"])
    predictor = SamPredictor(model)
    predictor.set_image_embedding(torch.randn(1, 256, 64, 64), original_size=(768, 1024))
    gen = torch.Generator().manual_seed(1)
    points = [(float(x), float(y), bool(p)) for x, y, p in zip(
        (torch.rand(clicks, generator=gen) * 1000).tolist(), (torch.rand(clicks, generator=gen) * 760).tolist(),
        (torch.rand(clicks, generator=gen) > 0.3).tolist())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # random weights: the untrained refiner is refused unless asked for (only its speed is measured)
        sessions = {m: InteractiveSession(predictor, method=m, allow_untrained=True) for m in ("sam", "focsam")}
    samples: dict[str, list[float]] = {"sam": [], "focsam": []}
    refocus: list[float] = []
    with torch.inference_mode():
        for _ in range(repeats):
            for method, session in sessions.items():
                session.reset()
            for index, (x, y, positive) in enumerate(points):
                for method, session in sessions.items():
                    session.add_click(x, y, positive)
                    if index >= 2:  # clicks after the refocus (click 2)
                        samples[method].append(session.last_latency_s)
                    elif index == 1 and method == "focsam":
                        refocus.append(session.last_latency_s)
    sam, focsam = statistics.median(samples["sam"]), statistics.median(samples["focsam"])
    return {"sam_s": sam, "focsam_s": focsam, "ratio": focsam / sam,
            "click2_with_refocus_s": statistics.median(refocus), "clicks_timed_per_method": len(samples["sam"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per measurement; medians are reported")
    parser.add_argument("--clicks", type=int, default=8, help="clicks per session in the per-click test")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    results = {"threads": args.threads, "repeats": args.repeats, "loadavg_before": load,
               "refiner": refiner_times(args.repeats), "per_click": per_click_times(args.clicks, args.repeats)}
    ref, click = results["refiner"], results["per_click"]
    print(f"threads {args.threads}, load average before {' '.join(load)}")
    for name, r in ref.items():
        print(f"refiner {name:13s} ({r['cells_on']:4d} cells on): median {r['median_s']:.3f} s, "
              f"min {r['min_s']:.3f} s, process CPU {r['cpu_s']:.3f} s")
    print(f"per click after refocus: SAM {click['sam_s'] * 1000:.1f} ms, FocSAM {click['focsam_s'] * 1000:.1f} ms "
          f"(ratio {click['ratio']:.3f}); click 2 with the refocus {click['click2_with_refocus_s']:.3f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
