"""Encoder and per-click latency, clicksam against the reference segment-anything package, on the
same random weights in the same run (median of repeated runs after a warm-up).

    python benchmarks/latency.py --model vit_b --repeats 5 --out benchmarks/results/latency_vit_b.json

Per click = prompt encoder + mask decoder + postprocessing to the image size, through each
package's ``SamPredictor.predict`` (multimask, as on a first click, and single-mask with
``mask_input``, as on later clicks).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reference_sam import _install_torchvision_stand_in  # noqa: E402


def paired_median(ref_fn, our_fn, repeats: int, warmup: int = 1) -> tuple[float, float, list[float], list[float]]:
    """Median times of two functions, run alternately so that both see the same machine load."""
    for _ in range(warmup):
        ref_fn()
        our_fn()
    ref_times, our_times = [], []
    for i in range(repeats):
        order = [(ref_fn, ref_times), (our_fn, our_times)]
        for fn, times in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(ref_times), statistics.median(our_times), ref_times, our_times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_b")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--click-repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip-encoder", action="store_true", help="only the per-click figures")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/latency.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    _install_torchvision_stand_in()
    from segment_anything import SamPredictor as RefPredictor
    from segment_anything.build_sam import _build_sam

    import clicksam
    from clicksam.build import sam_from_config
    from clicksam.images import read_image
    from clicksam.registry import get_config

    cfg = get_config(args.model)
    torch.manual_seed(0)
    ref = _build_sam(cfg.encoder_embed_dim, cfg.encoder_depth, cfg.encoder_num_heads, list(cfg.encoder_global_attn_indexes)).eval()
    ours = sam_from_config(cfg).eval()
    ours.load_state_dict(ref.state_dict())
    image = read_image(ROOT / "src/clicksam/examples/coffee.jpg")
    ref_pred, our_pred = RefPredictor(ref), clicksam.SamPredictor(ours)

    results: dict = {"model": args.model, "threads": torch.get_num_threads(), "torch": torch.__version__,
                     "cpu": platform.processor() or platform.machine(), "image": "src/clicksam/examples/coffee.jpg", "image_size": list(image.shape[:2])}
    if not args.skip_encoder:
        with torch.inference_mode():
            r, o, rt, ot = paired_median(lambda: ref_pred.set_image(image), lambda: our_pred.set_image(image), args.repeats)
        results["encoder_s"] = {"reference": r, "clicksam": o, "ratio": o / r, "reference_runs": rt, "clicksam_runs": ot}
        print(f"encoder: reference {r:.2f} s, clicksam {o:.2f} s, ratio {o / r:.3f}")
    else:
        ref_pred.set_image(image)
        our_pred.set_image(image)
    our_pred.set_image_embedding(ref_pred.features.clone(), ref_pred.original_size, ref_pred.input_size)
    pts, lbl = np.array([[288, 140]]), np.array([1])
    _, _, low_res = ref_pred.predict(pts, lbl, multimask_output=False)
    pts2, lbl2 = np.array([[288, 140], [162, 323]]), np.array([1, 0])
    cases = {
        "first_click_multimask": dict(point_coords=pts, point_labels=lbl, multimask_output=True),
        "later_click_mask_input": dict(point_coords=pts2, point_labels=lbl2, mask_input=low_res, multimask_output=False),
    }
    results["per_click_s"] = {}
    for name, kwargs in cases.items():
        with torch.inference_mode():
            r, o, _, _ = paired_median(lambda: ref_pred.predict(**kwargs), lambda: our_pred.predict(**kwargs), args.click_repeats, warmup=3)
        results["per_click_s"][name] = {"reference": r, "clicksam": o, "ratio": o / r}
        print(f"per click ({name}): reference {r * 1000:.1f} ms, clicksam {o * 1000:.1f} ms, ratio {o / r:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
