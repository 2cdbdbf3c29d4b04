"""Small-scale evidence for FocSAM (issue 6) on synthetic scenes.

1. Train a base tiny SAM from scratch at a reduced ``--frame`` with simulated iterative clicks and
   the single-mask token (the role of FocSAM's stage 1, the fine-tuned decoder); this reuses
   ``train_base`` and ``load_scenes`` of ``experiments/sam_ref_small.py``.
2. Freeze it, attach a FocusRefiner scaled to the frame (embedding 16×16 at frame 256, so
   4×4-cell windows: the same 4×4 window grid as 16×16 windows on 64×64), and train it with the
   real training method (``FocSamTraining.compute_loss``) on precomputed embeddings.
3. On held-out scenes (another seed family), run the click protocol (SPEC §7.1, 20 clicks) with
   ``method="sam"`` and ``"focsam"`` through ``InteractiveSession`` on the same base, and report
   NoC@85/90, NoF@90 and the mIoU@k curve.

Time-budgeted (``--base-minutes``, ``--ref-minutes``) for a CPU; with a GPU raise the budgets,
the frame and the scene counts. Writes ``report.md`` and ``results.json`` under ``--out``.

    .venv/bin/python experiments/focsam_small.py --out experiments/results/focsam_small
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from clicksam import InteractiveSession, SamPredictor
from clicksam.build import sam_from_config
from clicksam.eval.clicker import NoErrorLeftError, next_click
from clicksam.eval.metrics import iou, summarize_click_ious
from clicksam.methods.focsam import FocusRefiner
from clicksam.methods.focsam.training import FocSamTraining
from clicksam.methods.sam_ref.training import normalised_images
from clicksam.registry import get_config
from clicksam.train.method import Batch
from clicksam.train.prompts import SampleRandom
from clicksam.train.synthetic import make_scene

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sam_ref_small import load_scenes, train_base  # noqa: E402  (the shared base-SAM recipe)

METHODS = ("sam", "focsam")


def small_sam(frame: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return sam_from_config(dataclasses.replace(get_config("tiny"), image_size=frame))


def train_refiner(model, data, minutes: float, batch: int, lr: float, seed: int, max_clicks: int) -> list[float]:
    """Attach a frame-sized FocusRefiner and train it with ``FocSamTraining``; loss per step."""
    grid = model.prompt_encoder.image_embedding_size[0]
    model.add_module("focus_refiner", FocusRefiner(window_size=max(grid // 4, 2), frame_size=model.image_size))
    method = FocSamTraining(model, {"max_clicks": max_clicks, "click_map_size": 4 * grid})
    method.prepare()
    with torch.no_grad():
        emb = torch.cat([model.encode(normalised_images(model, data["images"][i:i + 16], data["sizes"][i:i + 16]))
                         for i in range(0, data["images"].shape[0], 16)])
    optimizer = torch.optim.AdamW([p for _, p in method.trainable_parameters()], lr=lr, weight_decay=0.05)
    rng = np.random.default_rng(seed + 1)
    count = data["images"].shape[0]
    history, start, step = [], time.perf_counter(), 0
    while time.perf_counter() - start < minutes * 60:
        method.train_mode()
        idx = torch.from_numpy(rng.choice(count, size=batch, replace=False))
        b = Batch(embedding=emb[idx], target=data["targets"][idx], input_size=data["sizes"][idx],
                  rng=SampleRandom([seed * 7_000_003 + step * batch + k for k in range(batch)]), step=step)
        out = method.compute_loss(b)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        history.append(float(out.loss.detach()))
        step += 1
    model.eval()
    model.focus_refiner.clicksam_trained = True
    return history


def evaluate(model, scenes, max_clicks: int = 20) -> dict[str, dict[str, object]]:
    """The click protocol on each scene with plain SAM and with FocSAM (same image, same base)."""
    predictor = SamPredictor(model)
    curves: dict[str, list[list[float]]] = {m: [] for m in METHODS}
    for scene in scenes:
        predictor.set_image(scene.image)
        gt = scene.mask.astype(np.int64)
        for method in METHODS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                session = InteractiveSession(predictor, method=method)
            pred = np.zeros(gt.shape, dtype=bool)
            clicks, ious = [], []
            for _ in range(max_clicks):
                try:
                    click = next_click(gt, pred, clicks)
                except NoErrorLeftError:
                    ious.append(ious[-1])
                    continue
                clicks.append(click)
                pred = session.add_click(click.x, click.y, click.positive)
                ious.append(iou(gt, pred))
            curves[method].append(ious)
    return {m: summarize_click_ious(curves[m], max_clicks) for m in METHODS}


def write_report(out: Path, results: dict, args: argparse.Namespace, info: dict) -> None:
    rows = [f"| {m} | {results[m]['noc']['85']:.2f} | {results[m]['noc']['90']:.2f} | {results[m]['nof']['90']} | "
            + " | ".join(f"{results[m]['miou'][k - 1]:.4f}" for k in (1, 2, 3, 5, 10, 20)) + " |" for m in METHODS]
    text = f"""# FocSAM small-scale experiment

Synthetic scenes (`clicksam.train.synthetic`), a tiny SAM at a {args.frame}-pixel frame trained
from scratch with iterative single-mask clicks (the base), then FocSAM's FocusRefiner trained on
the frozen base with `FocSamTraining` (refine step drawn as in SPEC §4, NFL + point loss).
Held-out: {args.test_scenes} scenes of another seed family; 20 clicks with the standard clicker.

| method | NoC@85 | NoC@90 | NoF@90 | mIoU@1 | @2 | @3 | @5 | @10 | @20 |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Training: {args.train_scenes} scenes; base {info['base_steps']} steps in {args.base_minutes} min
(loss {info['base_loss_start']:.3f} → {info['base_loss_end']:.3f}, mean of first/last 20 steps);
refiner {info['ref_steps']} steps in {args.ref_minutes} min (loss {info['ref_loss_start']:.3f} →
{info['ref_loss_end']:.3f}); batch {args.batch}; {args.threads} CPU threads; seed {args.seed}.
Evaluation took {info['eval_s']:.0f} s. Command: `{info['command']}`
"""
    (out / "report.md").write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/results/focsam_small"))
    parser.add_argument("--frame", type=int, default=256)
    parser.add_argument("--train-scenes", type=int, default=300)
    parser.add_argument("--test-scenes", type=int, default=20)
    parser.add_argument("--base-minutes", type=float, default=15.0)
    parser.add_argument("--ref-minutes", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--base-lr", type=float, default=1e-3)
    parser.add_argument("--ref-lr", type=float, default=1e-4)
    parser.add_argument("--max-clicks", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model = small_sam(args.frame, args.seed)
    train = load_scenes(args.seed, args.train_scenes, args.frame)
    base_hist = train_base(model, train, args.base_minutes, args.batch, args.base_lr, args.seed)
    print(f"base: {len(base_hist)} steps, loss {np.mean(base_hist[:20]):.3f} -> {np.mean(base_hist[-20:]):.3f}",
          flush=True)
    ref_hist = train_refiner(model, train, args.ref_minutes, args.batch, args.ref_lr, args.seed, args.max_clicks)
    print(f"refiner: {len(ref_hist)} steps, loss {np.mean(ref_hist[:20]):.3f} -> {np.mean(ref_hist[-20:]):.3f}",
          flush=True)
    test_scenes = [make_scene(args.seed + 1000, i) for i in range(args.test_scenes)]
    start = time.perf_counter()
    with torch.no_grad():
        results = evaluate(model, test_scenes)
    info = {
        "base_steps": len(base_hist), "ref_steps": len(ref_hist),
        "base_loss_start": float(np.mean(base_hist[:20])), "base_loss_end": float(np.mean(base_hist[-20:])),
        "ref_loss_start": float(np.mean(ref_hist[:20])), "ref_loss_end": float(np.mean(ref_hist[-20:])),
        "eval_s": time.perf_counter() - start,
        "command": " ".join(["experiments/focsam_small.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "info": info, "results": results,
                                                       "base_loss": base_hist, "ref_loss": ref_hist}, indent=1))
    write_report(args.out, results, args, info)
    print((args.out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
