"""Which int8 image encoder? Every candidate against fp32: speed, peak memory, embedding SQNR and
cosine on real photos, and the final masks of simulated click sessions.

    # speed (random ViT-B weights) and SQNR on real photos, labelled as random weights
    python benchmarks/int8_encoder.py --model vit_b --rounds 3 --threads 2
    # agreement on the trained small-scale base (experiments/common.py; train it first, see --help)
    python benchmarks/int8_encoder.py --model base --base-minutes 35 --scenes 60 --rounds 3

Candidates (``encoder_bench.VARIANTS``): onnxruntime dynamic quantisation (s8 or u8 weights, per
tensor or per channel, MatMul only or MatMul + Conv), onnxruntime static QDQ quantisation calibrated
on other photos, and PyTorch's dynamic int8 ``nn.Linear``; fp32 baselines: clicksam on torch and on
onnxruntime, and segment-anything's encoder on the same weights (ViT-B only). Each variant is timed
in fresh processes (``encoder_bench.measure``), rotated every round; ratios are of medians measured
in the same run. Quality is measured against clicksam's fp32 ``Sam.encode``:

- embeddings: SQNR (dB) and cosine on real photos from ``../shared/data`` (GrabCut, Berkeley, DAVIS);
- masks: ``--scenes`` synthetic held-out scenes (family 1000) for the base, or the photos' own
  objects for ViT-B: 20 clicks from ``clicksam.eval``'s clicker. Two protocols: (1) the same clicks
  as the fp32 session (chosen on fp32's errors), IoU between the candidate's and fp32's masks after
  every click ("agreement"); (2) the candidate's own session (its own clicks), its IoU with the
  ground truth against fp32's (mIoU over clicks 1-20, NoC@85/90).

One JSON per run (``int8_encoder_<model>_<tag>.json``, never overwritten) and a PNG beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import encoder_bench as eb  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
PHOTO_SETS = ("GrabCut", "Berkeley", "DAVIS")


def photos(per_set: int, offset: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``per_set`` objects of each of GrabCut, Berkeley, DAVIS (after skipping ``offset``):
    (object id, image H×W×3 uint8, ground truth H×W int8)."""
    from clicksam.eval.datasets import load_dataset

    if not SHARED_DATA.is_dir():
        raise SystemExit(f"the benchmark photos are read from {SHARED_DATA}, which is missing")
    chosen = []
    for name in PHOTO_SETS:
        dataset = load_dataset(name, SHARED_DATA)
        for obj in dataset.objects[offset : offset + per_set]:
            image, gt = dataset.load(obj)
            chosen.append((f"{name}/{obj.object_id}", image, gt))
    return chosen


def synthetic_scenes(count: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from clicksam.train.synthetic import make_scene

    scenes = []
    for i in range(count):
        scene = make_scene(1000, i)
        scenes.append((f"synthetic/1000/{i}", scene.image, scene.mask.astype(np.int8)))
    return scenes


def build_model(args) -> tuple[Any, Any, str]:
    """(model, config, description of its weights)."""
    if args.model == "base":
        sys.path.insert(0, str(ROOT / "experiments"))
        import common

        settings = common.BaseSettings(minutes=args.base_minutes)
        path = common.CACHE / f"base_{settings.key()}.pt"
        if not path.is_file():
            raise SystemExit(f"no trained base at {path}; train it first (about {args.base_minutes:.0f} min of one core): "
                             f"OMP_NUM_THREADS=1 .venv/bin/python experiments/base_probe.py --base-minutes {args.base_minutes:g}")
        model, info = common.get_base(settings, log=lambda m: None)
        config = common.small_config(settings.frame, settings.window, settings.patch, settings.encoder_dim, settings.encoder_depth)
        model.model_name = "small-base"
        return model, config, f"trained small-scale base ({path.name}, {info['steps']} steps, {settings.minutes:g} min budget)"
    from clicksam.build import sam_from_config
    from clicksam.registry import get_config

    config = get_config(args.model)
    torch.manual_seed(0)
    model = sam_from_config(config).eval()
    model.model_name = args.model
    return model, config, "RANDOM weights (seed 0): speed and SQNR only; masks are not meaningful for quality"


def embedding_quality(embeddings: dict[str, np.ndarray], baseline: str = "torch-fp32") -> dict[str, dict[str, float]]:
    ref = embeddings[baseline]
    out = {}
    for name, emb in embeddings.items():
        if name == baseline:
            continue
        sqnr = [eb.sqnr_db(emb[i], ref[i]) for i in range(len(ref))]
        cos = [eb.cosine(emb[i], ref[i]) for i in range(len(ref))]
        out[name] = {"sqnr_db_mean": float(np.mean(sqnr)), "sqnr_db_min": float(np.min(sqnr)),
                     "cosine_mean": float(np.mean(cos)), "cosine_min": float(np.min(cos)), "per_image_sqnr_db": sqnr}
    return out


def click_agreement(model, items, sizes, ref_emb: np.ndarray, emb: np.ndarray, max_clicks: int) -> dict[str, Any]:
    """The two mask protocols of the module docstring for one candidate's embeddings."""
    from clicksam import InteractiveSession, SamPredictor
    from clicksam.eval.clicker import NoErrorLeftError, next_click
    from clicksam.eval.metrics import iou, summarize_click_ious

    def session_for(predictor, index, embedding):
        original, input_size = sizes[index]
        predictor.set_image_embedding(torch.from_numpy(embedding[index : index + 1]), original, input_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return InteractiveSession(predictor, method="sam")

    ref_pred, var_pred = SamPredictor(model), SamPredictor(model)
    agreement, ref_curves, same_click_curves, own_curves = [], [], [], []
    for index, (_, _, gt) in enumerate(items):
        ref_session, var_session = session_for(ref_pred, index, ref_emb), session_for(var_pred, index, emb)
        ref_mask, clicks, agree, ref_ious, same_ious = np.zeros(gt.shape, bool), [], [], [], []
        for _ in range(max_clicks):  # protocol 1: fp32's clicks for both
            try:
                click = next_click(gt, ref_mask, clicks)
            except NoErrorLeftError:
                agree.append(agree[-1]), ref_ious.append(ref_ious[-1]), same_ious.append(same_ious[-1])
                continue
            clicks.append(click)
            ref_mask = ref_session.add_click(click.x, click.y, click.positive)
            var_mask = var_session.add_click(click.x, click.y, click.positive)
            agree.append(iou(ref_mask.astype(np.int8), var_mask))
            ref_ious.append(iou(gt, ref_mask))
            same_ious.append(iou(gt, var_mask))
        own_session, own_mask, own_clicks, own_ious = session_for(var_pred, index, emb), np.zeros(gt.shape, bool), [], []
        for _ in range(max_clicks):  # protocol 2: the candidate's own clicks
            try:
                click = next_click(gt, own_mask, own_clicks)
            except NoErrorLeftError:
                own_ious.append(own_ious[-1])
                continue
            own_clicks.append(click)
            own_mask = own_session.add_click(click.x, click.y, click.positive)
            own_ious.append(iou(gt, own_mask))
        agreement.append(agree), ref_curves.append(ref_ious), same_click_curves.append(same_ious), own_curves.append(own_ious)
    agreement_arr = np.asarray(agreement)
    ref_summary, own_summary = summarize_click_ious(ref_curves, max_clicks), summarize_click_ious(own_curves, max_clicks)
    return {
        "scenes": len(items),
        "agreement_miou_all_clicks": float(agreement_arr.mean()),
        "agreement_miou_final_click": float(agreement_arr[:, -1].mean()),
        "agreement_min_final_click": float(agreement_arr[:, -1].min()),
        "agreement_curve": agreement_arr.mean(0).tolist(),
        "same_clicks_gt_miou_1to20": float(np.mean(same_click_curves)),
        "own_clicks_gt_miou_1to20": float(np.mean(own_curves)),
        "fp32_gt_miou_1to20": float(np.mean(ref_curves)),
        "own_clicks_noc": own_summary["noc"], "fp32_noc": ref_summary["noc"],
        "own_clicks_miou_curve": own_summary["miou"], "fp32_miou_curve": ref_summary["miou"],
    }


def embed_all(spec: dict[str, Any], stack: Path, out: Path) -> np.ndarray:
    eb.run_worker(dict(spec, input=str(stack), embed_out=str(out), warmup=0, repeats=1))
    return np.load(out)


def ratios(speed: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, s in speed.items():
        row = {}
        for base in ("reference", "torch-fp32", "onnx-fp32"):
            if base in speed:
                row[f"wall_vs_{base}"] = s["wall_s"] / speed[base]["wall_s"]
                row[f"cpu_vs_{base}"] = s["cpu_s"] / speed[base]["cpu_s"]
        out[name] = row
    return out


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (JSON has neither)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speed, quality, masks = result.get("speed", {}), result["quality"].get("photos", {}), result.get("masks", {})
    names = list(result["variants"])
    y = np.arange(len(names))
    fig, axes = plt.subplots(1, 4 if masks else 3, figsize=(21 if masks else 16, 4.8))
    if speed:
        base = "reference" if "reference" in speed else "torch-fp32"
        axes[0].barh(y + 0.2, [speed[n]["wall_s"] / speed[base]["wall_s"] for n in names], height=0.4, color="tab:blue", label="wall time")
        axes[0].barh(y - 0.2, [speed[n]["cpu_s"] / speed[base]["cpu_s"] for n in names], height=0.4, color="tab:cyan", label="CPU time")
        if base == "reference":
            axes[0].axvline(0.5, color="red", ls="--", lw=1, label="goal 0.5x (int8 vs reference)")
        axes[0].set_xlabel(f"encoder time / {base} (medians, {result['threads']} threads)")
        axes[0].legend(fontsize=8)
        axes[1].barh(y, [(speed[n]["peak_rss_mb"] or 0) / 1024 for n in names], color="tab:orange")
        axes[1].set_xlabel("peak RSS of one encoding (GB)")
    sqnr = [min(quality[n]["sqnr_db_mean"] or 120, 120) if n in quality else 0 for n in names]
    axes[2].barh(y, sqnr, color="tab:green")
    axes[2].set_xlabel("embedding SQNR vs torch fp32 on photos (dB, capped at 120)")
    if masks:
        axes[3].barh(y + 0.2, [masks[n]["agreement_miou_all_clicks"] if n in masks else 0 for n in names], height=0.4,
                     color="tab:purple", label="mean over clicks")
        axes[3].barh(y - 0.2, [masks[n]["agreement_miou_final_click"] if n in masks else 0 for n in names], height=0.4,
                     color="tab:pink", label="final click")
        axes[3].axvline(0.98, color="red", ls="--", lw=1, label="target 0.98")
        axes[3].set_xlim(0.9, 1.0)
        axes[3].set_xlabel("mask IoU vs fp32 on fp32's clicks")
        axes[3].legend(fontsize=8, loc="lower left")
    for i, ax in enumerate(axes):
        ax.set_yticks(y, names if i == 0 else [""] * len(names))
    fig.suptitle(f"{result['model']} image encoder, {result['weights']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_b", help="vit_b, vit_l, vit_h (random weights) or base (the trained small base)")
    parser.add_argument("--base-minutes", type=float, default=35.0, help="picks the cached base (experiments/common.py)")
    parser.add_argument("--variants", nargs="+", default=list(eb.VARIANTS), choices=list(eb.VARIANTS))
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (fresh processes, rotated order)")
    parser.add_argument("--repeats", type=int, default=1, help="timed encodings per process after one warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--photos", type=int, default=1, help="photos per set (GrabCut, Berkeley, DAVIS) for SQNR")
    parser.add_argument("--calibration", type=int, default=1, help="calibration photos per set for static quantisation")
    parser.add_argument("--scenes", type=int, default=60, help="synthetic held-out scenes for the base's mask agreement")
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--masks", action="store_true", help="also run the click protocol for a random-weight ViT")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--cache-dir", type=Path, help="where the ONNX graphs are cached (default: clicksam's cache)")
    parser.add_argument("--tag", default=None, help="run tag in the file names (default: date-time)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--replot", type=Path, metavar="JSON", help="only redraw the PNG of an earlier run")
    args = parser.parse_args(argv)
    if args.replot is not None:
        plot(json.loads(args.replot.read_text()), args.replot.with_suffix(".png"))
        return 0
    if min(args.rounds, args.repeats, args.threads, args.photos) < 1:
        parser.error("--rounds, --repeats, --threads and --photos must be positive")
    torch.set_num_threads(args.threads)
    tag = args.tag or eb.run_tag()
    out = args.out_dir / f"int8_encoder_{args.model}_{tag}.json"
    if out.exists():
        parser.error(f"{out} exists; results are never overwritten (pick another --tag)")

    model, config, weights = build_model(args)
    variants = [v for v in args.variants if not (v == "reference" and model.image_size != 1024)]
    if "torch-fp32" not in variants:
        variants.insert(0, "torch-fp32")
    photo_items = photos(args.photos)
    sets = {"photos": photo_items}
    if args.model == "base":
        sets["scenes"] = synthetic_scenes(args.scenes)
    started, load_start = time.time(), list(os.getloadavg())
    result: dict[str, Any] = {
        "run": tag, "model": args.model, "weights": weights, "threads": args.threads, "rounds": args.rounds,
        "repeats": args.repeats, "variants": variants, "descriptions": {v: eb.VARIANTS[v].description for v in variants},
        "command": "python benchmarks/int8_encoder.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "load_average_start": load_start,
        "photos": [name for name, _, _ in photo_items],
    }
    with tempfile.TemporaryDirectory(prefix="clicksam-int8-") as tmp:
        work = Path(tmp)
        model_file = eb.save_model(model, config, work / "model.pt")
        stacks = {}
        for set_name, items in sets.items():
            stack, sizes = eb.prepare_inputs(model, [image for _, image, _ in items])
            np.save(work / f"{set_name}.npy", stack)
            stacks[set_name] = (work / f"{set_name}.npy", sizes)
        calibration = None
        if "onnx-int8-static" in variants:
            calibration, _ = eb.prepare_inputs(model, [image for _, image, _ in photos(args.calibration, offset=args.photos)])
        graphs = eb.onnx_graphs(model, variants, calibration, args.cache_dir)
        specs = {v: {"variant": v, "threads": args.threads, "model": str(model_file), "graph": str(graphs.get(v, "")),
                     "input": str(stacks["photos"][0]), "input_index": 0, "repeats": args.repeats} for v in variants}
        if not args.skip_speed:
            result["speed"] = eb.measure(specs, args.rounds)
            result["ratios"] = ratios(result["speed"])
        result["quality"], result["masks"] = {}, {}
        for set_name, (stack, sizes) in stacks.items():
            embeddings = {v: embed_all(specs[v], stack, work / f"{set_name}_{v}.npy") for v in variants}
            result["quality"][set_name] = embedding_quality(embeddings)
            mask_set = "scenes" if "scenes" in stacks else ("photos" if args.masks else None)
            if set_name == mask_set:
                for v in variants:
                    if v != "torch-fp32":
                        result["masks"][v] = click_agreement(model, sets[set_name], sizes, embeddings["torch-fp32"], embeddings[v], args.clicks)
                        print(f"masks {v}: agreement mIoU {result['masks'][v]['agreement_miou_all_clicks']:.4f} (clicks 1-{args.clicks}), "
                              f"final {result['masks'][v]['agreement_miou_final_click']:.4f}", flush=True)
    result["load_average_end"], result["seconds"] = list(os.getloadavg()), time.time() - started
    from clicksam.io.atomic import atomic_write_json

    atomic_write_json(out, finite(result))
    plot(finite(result), out.with_suffix(".png"))
    print(f"written {out} and {out.with_suffix('.png').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
