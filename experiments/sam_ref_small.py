"""Small-scale evidence for SAM-REF (issue 7) on synthetic objects with thin parts.

1. Train a base tiny SAM (encoder, prompt encoder, decoder; the ``tiny`` config at a reduced
   ``--frame``) from scratch on synthetic scenes (``clicksam.train.synthetic``) with simulated
   iterative clicks (SPEC §7.3), NFL + Dice on its low-res logits.
2. Freeze it and train SAM-REF's refiners with the real training method
   (``SamRefTraining.compute_loss``, embeddings precomputed as in an embedding store).
3. On held-out scenes (another seed family), run the standard click protocol (SPEC §7.1, 20
   clicks, ``clicksam.eval``) through ``InteractiveSession`` with ``method="sam"`` and
   ``"sam-ref"`` on the same base and report NoC@85/90, 5-mIoU, mIoU@1 and boundary IoU.

Everything is time-budgeted (``--base-minutes``, ``--ref-minutes``) so it fits a CPU; with a
GPU raise the budgets, ``--frame 1024`` and the scene counts. Writes ``report.md`` and
``results.json`` under ``--out``.

    .venv/bin/python experiments/sam_ref_small.py --out experiments/results/sam_ref_small
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from clicksam import InteractiveSession, SamPredictor
from clicksam.build import sam_from_config
from clicksam.eval.clicker import NoErrorLeftError, next_click
from clicksam.eval.metrics import boundary_iou, iou, summarize_click_ious
from clicksam.methods.sam_ref import SamRefConfig, attach
from clicksam.methods.sam_ref.training import SamRefTraining, normalised_images
from clicksam.registry import get_config
from clicksam.train import losses
from clicksam.train.data import downsample_target
from clicksam.train.method import Batch
from clicksam.train.prompts import FRAME, SampleRandom, geometric_counts, simulate_iterative_clicks
from clicksam.train.synthetic import make_scene
from clicksam.transforms import ResizeLongestSide


def small_sam(frame: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = sam_from_config(dataclasses.replace(get_config("tiny"), image_size=frame))
    scale = frame / 1024
    attach(model, SamRefConfig(image_size=frame, patch_size=max(frame // 4, 16),
                               window_min_size=max(int(64 * scale), 8), click_radius=max(5 * scale, 1.5)))
    return model


def load_scenes(seed: int, count: int, frame: int) -> dict[str, object]:
    """Scenes resized into the frame: uint8 images B×3×S×S, int8 targets B×1×S×S (-1 padding)."""
    transform = ResizeLongestSide(frame)
    images = torch.zeros(count, 3, frame, frame, dtype=torch.uint8)
    targets = torch.full((count, 1, frame, frame), -1, dtype=torch.int8)
    sizes, originals = [], []
    for i in range(count):
        scene = make_scene(seed, i)
        resized = transform.apply_image(scene.image)
        h, w = resized.shape[:2]
        mask = cv2.resize(scene.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        images[i, :, :h, :w] = torch.from_numpy(resized).permute(2, 0, 1)
        targets[i, 0, :h, :w] = torch.from_numpy(mask.astype(np.int8))
        sizes.append((h, w))
        originals.append(scene)
    return {"images": images, "targets": targets, "sizes": torch.tensor(sizes), "scenes": originals}


def to_frame(coords: torch.Tensor, frame: int) -> torch.Tensor:
    return coords if frame == FRAME else (coords + 0.5) * (frame / FRAME) - 0.5


def train_base(model, data, minutes: float, batch: int, lr: float, seed: int) -> list[float]:
    """Train all of SAM from scratch with iterative clicks; returns the loss per step."""
    frame = model.image_size
    low_res = 4 * model.prompt_encoder.image_embedding_size[0]
    base_params = [p for n, p in model.named_parameters() if not n.startswith("sam_ref.")]
    optimizer = torch.optim.AdamW(base_params, lr=lr, weight_decay=0.01)
    model.train()
    rng = np.random.default_rng(seed)
    count = data["images"].shape[0]
    history, start, step = [], time.perf_counter(), 0
    while time.perf_counter() - start < minutes * 60:
        idx = torch.from_numpy(rng.choice(count, size=batch, replace=False))
        images = normalised_images(model, data["images"][idx], data["sizes"][idx])
        target = downsample_target(data["targets"][idx], low_res)
        emb = model.encode(images)
        srng = SampleRandom([seed * 1_000_003 + step * batch + k for k in range(batch)])
        counts = geometric_counts(srng, 6, 0.6)
        frozen = emb.detach()

        def decode(index, coords, labels, mask_input):
            out = model.decode(frozen[index], (to_frame(coords, frame), labels), mask_input=mask_input,
                               multimask_output=False)
            return out.low_res_logits

        clicks, prev, _ = simulate_iterative_clicks(decode, target, counts, srng)
        loss = torch.zeros(())
        for c in sorted(set(counts.tolist())):
            sel = torch.nonzero(counts == c).flatten()
            mask_in = prev[sel] if prev is not None and c > 1 else None
            out = model.decode(emb[sel], (to_frame(clicks.coords[sel, :c], frame), clicks.labels[sel, :c]),
                               mask_input=mask_in, multimask_output=False)
            t = target[sel]
            per = losses.normalized_focal_loss(out.low_res_logits, t) + losses.dice_loss(out.low_res_logits, t)
            loss = loss + per.sum() / batch
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
        step += 1
    model.eval()
    return history


def train_refiner(model, data, minutes: float, batch: int, lr: float, seed: int) -> list[float]:
    """Train model.sam_ref with ``SamRefTraining`` on the frozen base; returns the loss per step."""
    method = SamRefTraining(model, {"max_clicks": 10})
    method.prepare()
    with torch.no_grad():
        emb = torch.cat([
            model.encode(normalised_images(model, data["images"][i:i + 16], data["sizes"][i:i + 16]))
            for i in range(0, data["images"].shape[0], 16)
        ])
    optimizer = torch.optim.AdamW([p for _, p in method.trainable_parameters()], lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed + 1)
    count = data["images"].shape[0]
    history, start, step = [], time.perf_counter(), 0
    while time.perf_counter() - start < minutes * 60:
        method.train_mode()
        idx = torch.from_numpy(rng.choice(count, size=batch, replace=False))
        b = Batch(embedding=emb[idx], target=data["targets"][idx], input_size=data["sizes"][idx],
                  rng=SampleRandom([seed * 7_000_003 + step * batch + k for k in range(batch)]),
                  step=step, image=data["images"][idx])
        out = method.compute_loss(b)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        history.append(float(out.loss.detach()))
        step += 1
    model.eval()
    model.sam_ref.clicksam_trained = True
    return history


def evaluate(model, scenes, max_clicks: int = 20) -> dict[str, dict[str, object]]:
    """The click protocol on each scene for ``sam`` and ``sam-ref`` (same image, same base)."""
    predictor = SamPredictor(model)
    curves = {"sam": [], "sam-ref": []}
    boundary = {"sam": [], "sam-ref": []}
    for scene in scenes:
        predictor.set_image(scene.image)
        gt = scene.mask.astype(np.int64)
        for method in curves:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                session = InteractiveSession(predictor, method=method)
            pred = np.zeros(gt.shape, dtype=bool)
            clicks, ious, bious = [], [], []
            for _ in range(max_clicks):
                try:
                    click = next_click(gt, pred, clicks)
                except NoErrorLeftError:
                    ious.append(ious[-1]); bious.append(bious[-1])
                    continue
                clicks.append(click)
                pred = session.add_click(click.x, click.y, click.positive)
                ious.append(iou(gt, pred))
                bious.append(boundary_iou(gt, pred))
            curves[method].append(ious)
            boundary[method].append(bious)
    result = {}
    for method in curves:
        summary = summarize_click_ious(curves[method], max_clicks)
        b = np.asarray(boundary[method])
        summary["boundary_iou_at"] = {str(k): float(b[:, k - 1].mean()) for k in (1, 3, 5, 10) if k <= max_clicks}
        summary["boundary_iou_1to5"] = float(b[:, :5].mean())
        result[method] = summary
    return result


def write_report(out: Path, results: dict, args: argparse.Namespace, info: dict) -> None:
    rows = []
    for method in ("sam", "sam-ref"):
        r = results[method]
        rows.append(
            f"| {method} | {r['noc']['85']:.2f} | {r['noc']['90']:.2f} | {r['nof']['90']} | {r['miou'][0]:.4f} | "
            f"{r['5-miou']:.4f} | {r['boundary_iou_at']['1']:.4f} | {r['boundary_iou_at']['5']:.4f} | "
            f"{r['boundary_iou_1to5']:.4f} |"
        )
    text = f"""# SAM-REF small-scale experiment

Synthetic scenes (`clicksam.train.synthetic`, shapes with rings, limbs and strokes), a tiny SAM
at a {args.frame}-pixel frame trained from scratch, then SAM-REF's refiners trained on the frozen
base (`SamRefTraining`). Held-out: {args.test_scenes} scenes of another seed family; 20 clicks
with the standard clicker (SPEC §7.1), IoU and boundary IoU (dilation 0.02) at the original size.

| method | NoC@85 | NoC@90 | NoF@90 | mIoU@1 | 5-mIoU | bIoU@1 | bIoU@5 | bIoU 1-5 |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Training: {args.train_scenes} scenes; base {info['base_steps']} steps in {args.base_minutes} min
(loss {info['base_loss_start']:.3f} → {info['base_loss_end']:.3f}, mean of first/last 20 steps);
refiners {info['ref_steps']} steps in {args.ref_minutes} min (loss {info['ref_loss_start']:.3f} →
{info['ref_loss_end']:.3f}); batch {args.batch}; {args.threads} CPU threads; seed {args.seed}.
Evaluation took {info['eval_s']:.0f} s. Command:
`{info['command']}`
"""
    (out / "report.md").write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/results/sam_ref_small"))
    parser.add_argument("--frame", type=int, default=256)
    parser.add_argument("--train-scenes", type=int, default=400)
    parser.add_argument("--test-scenes", type=int, default=40)
    parser.add_argument("--base-minutes", type=float, default=8.0)
    parser.add_argument("--ref-minutes", type=float, default=8.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--base-lr", type=float, default=1e-3)
    parser.add_argument("--ref-lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-model", type=Path, help="also save the trained state dict here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model = small_sam(args.frame, args.seed)
    train = load_scenes(args.seed, args.train_scenes, args.frame)
    base_hist = train_base(model, train, args.base_minutes, args.batch, args.base_lr, args.seed)
    print(f"base: {len(base_hist)} steps, loss {np.mean(base_hist[:20]):.3f} -> {np.mean(base_hist[-20:]):.3f}", flush=True)
    ref_hist = train_refiner(model, train, args.ref_minutes, args.batch, args.ref_lr, args.seed)
    print(f"refiners: {len(ref_hist)} steps, loss {np.mean(ref_hist[:20]):.3f} -> {np.mean(ref_hist[-20:]):.3f}", flush=True)
    if args.save_model:
        torch.save(model.state_dict(), args.save_model)
    test_scenes = [make_scene(args.seed + 1000, i) for i in range(args.test_scenes)]
    start = time.perf_counter()
    with torch.no_grad():
        results = evaluate(model, test_scenes)
    info = {
        "base_steps": len(base_hist), "ref_steps": len(ref_hist),
        "base_loss_start": float(np.mean(base_hist[:20])), "base_loss_end": float(np.mean(base_hist[-20:])),
        "ref_loss_start": float(np.mean(ref_hist[:20])), "ref_loss_end": float(np.mean(ref_hist[-20:])),
        "eval_s": time.perf_counter() - start, "command": " ".join(["experiments/sam_ref_small.py", *(argv or sys.argv[1:])]),
    }
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "info": info, "results": results,
                                                       "base_loss": base_hist, "ref_loss": ref_hist}, indent=1))
    write_report(args.out, results, args, info)
    print((args.out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
