"""Encoder and per-click latency against the reference segment-anything package, on the same random
weights in the same run.

    python benchmarks/latency.py --model vit_b --rounds 3 --threads 2          # -> latency_vit_b_<tag>.json/.png
    python benchmarks/latency.py --model vit_b --rounds 1 --profile --tag check

Encoder: one row per runtime and precision (``encoder_bench.PRODUCT_VARIANTS``): segment-anything's
``image_encoder`` (torch, fp32), clicksam's ``Sam.encode`` (torch, fp32) and its ONNX encoder on
onnxruntime (fp32 and int8), each timed in fresh processes with the order rotated every round
(``encoder_bench.measure``): wall and CPU time of an encoding of src/clicksam/examples/coffee.jpg (preprocessed
once, the same input for all), and its peak resident memory. Ratios are of medians measured in the
same run. Next to the int8 row: its embedding's SQNR and cosine against clicksam's fp32 encoder on
this photo (random weights: a labelled figure) and the mask agreement on the trained small base,
read from the newest ``int8_encoder_base_*.json`` (``benchmarks/int8_encoder.py``).

Per click (torch; ``--skip-clicks`` skips it): prompt encoder + mask decoder + postprocessing to the
image size through each package's ``SamPredictor.predict`` (multimask, as on a first click, and
single-mask with ``mask_input``, as on later clicks), alternated in one process.

``--profile`` adds where the time of one encoding goes for every encoder row (onnxruntime's node
profiler, ``torch.profiler`` for the torch rows), saved in the same JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import encoder_bench as eb  # noqa: E402
from tests.reference_sam import _install_torchvision_stand_in  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
INT8_GOAL = 0.5  # issue 17: the ViT-B int8 encoder at most 0.5x of the reference encoder


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


def build_models(name: str):
    """(reference segment-anything model, clicksam model, config) on the same seeded random weights."""
    from segment_anything.build_sam import _build_sam

    from clicksam.build import sam_from_config
    from clicksam.registry import get_config

    cfg = get_config(name)
    torch.manual_seed(0)
    ref = _build_sam(cfg.encoder_embed_dim, cfg.encoder_depth, cfg.encoder_num_heads, list(cfg.encoder_global_attn_indexes)).eval()
    ours = sam_from_config(cfg).eval()
    ours.load_state_dict(ref.state_dict())
    ours.model_name = name
    return ref, ours, cfg


def newest_base_agreement() -> Optional[dict[str, Any]]:
    """The int8 mask agreement on the trained small base from the newest int8_encoder_base_*.json."""
    files = sorted(RESULTS.glob("int8_encoder_base_*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    data = json.loads(files[-1].read_text())
    masks, quality = data.get("masks", {}).get("onnx-int8"), data.get("quality", {})
    if masks is None:
        return None
    return {"file": str(files[-1].relative_to(ROOT)), "weights": data["weights"], "scenes": masks["scenes"],
            "agreement_miou_all_clicks": masks["agreement_miou_all_clicks"],
            "agreement_miou_final_click": masks["agreement_miou_final_click"],
            "gt_miou_1to20_int8_vs_fp32": [masks["own_clicks_gt_miou_1to20"], masks["fp32_gt_miou_1to20"]],
            "photo_sqnr_db": quality.get("photos", {}).get("onnx-int8", {}).get("sqnr_db_mean")}


def encoder_rows(args, ours, cfg, image: np.ndarray, work: Path) -> dict[str, Any]:
    """Time, memory and (int8) embedding agreement of every encoder row; see the module docstring."""
    model_file = eb.save_model(ours, cfg, work / "model.pt")
    stack, _ = eb.prepare_inputs(ours, [image])
    np.save(work / "input.npy", stack)
    graphs = eb.onnx_graphs(ours, eb.PRODUCT_VARIANTS, None, args.cache_dir)
    specs = {v: {"variant": v, "threads": args.threads, "model": str(model_file), "graph": str(graphs.get(v, "")),
                 "input": str(work / "input.npy"), "repeats": args.repeats} for v in eb.PRODUCT_VARIANTS}
    speed = eb.measure(specs, args.rounds)
    ref = speed["reference"]
    rows = {}
    for name, s in speed.items():
        variant = eb.VARIANTS[name]
        rows[name] = dict(s, runtime=variant.runtime, precision=variant.precision, package="segment-anything" if name == "reference" else "clicksam",
                          wall_vs_reference=s["wall_s"] / ref["wall_s"], cpu_vs_reference=s["cpu_s"] / ref["cpu_s"])
    embeddings = {}
    for name in ("torch-fp32", "onnx-fp32", "onnx-int8"):
        eb.run_worker(dict(specs[name], embed_out=str(work / f"{name}.npy"), warmup=0))
        embeddings[name] = np.load(work / f"{name}.npy")
    for name in ("onnx-fp32", "onnx-int8"):
        rows[name]["photo_sqnr_db_vs_torch_fp32"] = eb.sqnr_db(embeddings[name], embeddings["torch-fp32"])
        rows[name]["photo_cosine_vs_torch_fp32"] = eb.cosine(embeddings[name], embeddings["torch-fp32"])
    if args.profile:
        for name in eb.PRODUCT_VARIANTS:
            rows[name]["profile"] = eb.run_worker(dict(specs[name], profile=str(work / f"profile_{name}")))["profile"]
    return rows


def click_rows(args, ref, ours, image: np.ndarray) -> dict[str, Any]:
    import clicksam
    from segment_anything import SamPredictor as RefPredictor

    ref_pred, our_pred = RefPredictor(ref), clicksam.SamPredictor(ours)
    with torch.inference_mode():
        ref_pred.set_image(image)
    our_pred.set_image_embedding(ref_pred.features.clone(), ref_pred.original_size, ref_pred.input_size)
    pts, lbl = np.array([[288, 140]]), np.array([1])
    _, _, low_res = ref_pred.predict(pts, lbl, multimask_output=False)
    pts2, lbl2 = np.array([[288, 140], [162, 323]]), np.array([1, 0])
    cases = {
        "first_click_multimask": dict(point_coords=pts, point_labels=lbl, multimask_output=True),
        "later_click_mask_input": dict(point_coords=pts2, point_labels=lbl2, mask_input=low_res, multimask_output=False),
    }
    rows = {}
    for name, kwargs in cases.items():
        with torch.inference_mode():
            r, o, _, _ = paired_median(lambda: ref_pred.predict(**kwargs), lambda: our_pred.predict(**kwargs), args.click_repeats, warmup=3)
        rows[name] = {"reference": r, "clicksam_torch": o, "ratio": o / r}
        print(f"per click ({name}): reference {r * 1000:.1f} ms, clicksam {o * 1000:.1f} ms, ratio {o / r:.3f}")
    return rows


def goal_line(results: dict[str, Any]) -> str:
    row = results["encoder"]["onnx-int8"]
    ratio = row["wall_vs_reference"]
    verdict = "met" if ratio <= INT8_GOAL else "NOT met"
    line = (f"goal (issue 17): {results['model']} int8 encoder {ratio:.3f}x of the reference's wall time "
            f"(CPU time {row['cpu_vs_reference']:.3f}x; goal <= {INT8_GOAL}x): {verdict}; "
            f"embedding SQNR {row['photo_sqnr_db_vs_torch_fp32']:.1f} dB, cosine {row['photo_cosine_vs_torch_fp32']:.5f} "
            f"vs fp32 on the photo ({'random weights' if results['model'] != 'base' else 'trained base'})")
    base = results.get("int8_agreement_trained_base")
    if base:
        line += (f"; trained small base ({base['scenes']} scenes, {base['file']}): final-mask mIoU int8 vs fp32 "
                 f"{base['agreement_miou_final_click']:.4f} (all clicks {base['agreement_miou_all_clicks']:.4f}; target >= 0.98)")
    else:
        line += "; no trained-base agreement yet (run benchmarks/int8_encoder.py --model base)"
    return line


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if "per_click_s" in results else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.2), squeeze=False)
    enc = results["encoder"]
    names = list(enc)
    labels = [f"{enc[n]['package']} {enc[n]['runtime']} {enc[n]['precision']}" for n in names]
    ax = axes[0][0]
    y = np.arange(len(names))
    ax.barh(y + 0.2, [enc[n]["wall_s"] for n in names], height=0.4, color="tab:blue", label="wall time (s)")
    ax.barh(y - 0.2, [enc[n]["cpu_s"] / results["threads"] for n in names], height=0.4, color="tab:cyan", label="CPU time / threads (s)")
    for i, n in enumerate(names):
        ax.text(enc[n]["wall_s"], i + 0.2, f"  {enc[n]['wall_vs_reference']:.2f}x, peak {enc[n]['peak_rss_mb'] / 1024:.1f} GB",
                va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 1.45 * max(enc[n]["wall_s"] for n in names))
    ax.set_xlabel(f"one encoding (median of {results['rounds']} fresh processes, {results['threads']} threads)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{results['model']} image encoder (random weights)", fontsize=10)
    if panels == 2:
        clicks = results["per_click_s"]
        ax = axes[0][1]
        cases = list(clicks)
        y = np.arange(len(cases))
        ax.barh(y + 0.2, [1000 * clicks[c]["reference"] for c in cases], height=0.4, label="segment-anything")
        ax.barh(y - 0.2, [1000 * clicks[c]["clicksam_torch"] for c in cases], height=0.4, label="clicksam (torch)")
        ax.set_yticks(y, [c.replace("_", " ") for c in cases])
        ax.set_xlabel("one click (ms, median)")
        ax.legend(fontsize=8)
        ax.set_title("per click: prompt encoder + decoder + postprocessing", fontsize=10)
    fig.text(0.01, 0.01, f"load average {results['load_average_start'][0]:.1f} -> {results['load_average_end'][0]:.1f}; run {results['run']}",
             fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_b")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per encoder row (order rotated)")
    parser.add_argument("--repeats", type=int, default=1, help="timed encodings per process after one warm-up")
    parser.add_argument("--click-repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip-encoder", action="store_true", help="only the per-click figures")
    parser.add_argument("--skip-clicks", action="store_true", help="only the encoder figures")
    parser.add_argument("--profile", action="store_true", help="also record where an encoding's time goes")
    parser.add_argument("--cache-dir", type=Path, help="where the ONNX graphs are cached (default: clicksam's cache)")
    parser.add_argument("--tag", help="run tag in the file names (default: date-time)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    if min(args.rounds, args.repeats, args.click_repeats, args.threads) < 1:
        parser.error("--rounds, --repeats, --click-repeats and --threads must be positive")
    tag = args.tag or eb.run_tag()
    out = args.out_dir / f"latency_{args.model}_{tag}.json"
    if out.exists():
        parser.error(f"{out} exists; results are never overwritten (pick another --tag)")
    torch.set_num_threads(args.threads)
    _install_torchvision_stand_in()
    from clicksam.images import read_image
    from clicksam.io.atomic import atomic_write_json

    ref, ours, cfg = build_models(args.model)
    image = read_image(ROOT / "src/clicksam/examples/coffee.jpg")
    results: dict[str, Any] = {
        "run": tag, "model": args.model, "weights": "random (seed 0), the same in both packages", "threads": args.threads,
        "rounds": args.rounds, "repeats": args.repeats, "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__, "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "image": "src/clicksam/examples/coffee.jpg", "image_size": list(image.shape[:2]),
        "command": "python benchmarks/latency.py " + " ".join(sys.argv[1:]), "load_average_start": list(os.getloadavg()),
    }
    if not args.skip_encoder:
        with tempfile.TemporaryDirectory(prefix="clicksam-latency-") as tmp:
            results["encoder"] = encoder_rows(args, ours, cfg, image, Path(tmp))
        results["int8_agreement_trained_base"] = newest_base_agreement()
        for name, row in results["encoder"].items():
            print(f"encoder {name}: {row['wall_s']:.2f} s ({row['wall_vs_reference']:.3f}x), CPU {row['cpu_s']:.2f} s "
                  f"({row['cpu_vs_reference']:.3f}x), peak {row['peak_rss_mb']:.0f} MB")
        results["goal"] = goal_line(results)
        print(results["goal"])
    if not args.skip_clicks:
        results["per_click_s"] = click_rows(args, ref, ours, image)
    results["load_average_end"] = list(os.getloadavg())
    atomic_write_json(out, results)
    if "encoder" in results:
        plot(results, out.with_suffix(".png"))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
