"""What the three small-scale experiments (``stable_sam_small``, ``focsam_small``, ``sam_ref_small``)
share: the synthetic scenes, the small from-scratch base SAM (trained once and cached under
``experiments/cache/``), the loop that trains a method's modules with its real ``TrainMethod``,
the click protocol, and the report helpers.

The base is the ``tiny`` registry config at a reduced frame (256 px, window 8). It is trained
from scratch on ``make_scene(seed, i)`` scenes with SAM's own prompt mix, so it serves every
method's protocol: jittered boxes (single-mask output), 1-5 random positive points (for one
point the loss of the best of the three masks plus that of the single-mask token, which FocSAM
decodes click 1 with; single-mask for more), and simulated iterative clicks with the previous
low-res logits fed back as ``mask_input`` (SPEC §7.3); BCE + Dice on the low-res logits plus
the IoU head's MSE.

Why the base once learned nothing (loss 1.20 → 1.03, GT-box mIoU 0.047): a decoder trained from
scratch must first learn to *locate* the prompt, by matching the prompt tokens' positional
encoding against the dense positional encoding added to the image keys. The image embedding of a
random, still-changing encoder has the same magnitude as that positional encoding and drowns it,
and in the meantime BCE on objects covering ~3 % of the frame drives every logit negative, where
the Dice gradient vanishes: the model sits at "predict nothing" (loss ≈ 1.1, see the session's
diagnostics: 700 steps at lr 1e-3 without leaving it). Fading the image embedding in over the
first ``ramp_steps`` steps (a curriculum: ``emb · min(1, step / ramp_steps)``), with a warm-up and a
lower peak learning rate, lets the prompt → location mapping form first; the same 350 steps then
reach 0.46 box mIoU on training scenes instead of 0.0. Trained so on 400 scenes the base then
overfit them (box mIoU at low res 0.55 on training scenes, 0.36 on held-out ones after 15 min, ~31
passes), so it trains on 2000 scenes (rendered once and cached, like the base).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch

from clicksam import InteractiveSession, SamPredictor
from clicksam.build import sam_from_config
from clicksam.eval.clicker import NoErrorLeftError, next_click
from clicksam.eval.metrics import boundary_iou, iou, summarize_click_ious
from clicksam.methods.sam_ref.training import normalised_images
from clicksam.methods.stable_sam.training import point_cells
from clicksam.registry import ModelConfig, get_config
from clicksam.train import losses
from clicksam.train.data import downsample_target
from clicksam.train.method import Batch
from clicksam.train.prompts import (SampleRandom, frame_points, geometric_counts, noisy_boxes, object_boxes,
                                    random_positive_points, session_logits, simulate_iterative_clicks)
from clicksam.train.synthetic import make_scene
from clicksam.transforms import ResizeLongestSide

ROOT = Path(__file__).resolve().parent
# rendered scenes and trained bases; CLICKSAM_EXPERIMENTS_CACHE moves it (the tests use a temporary one)
CACHE = Path(os.environ.get("CLICKSAM_EXPERIMENTS_CACHE", ROOT / "cache"))
TRAIN_SEED, TEST_SEED = 0, 1000  # scene families: training and held-out
BASE_RECIPE = 4  # bump when the base recipe changes (invalidates the cache)


@dataclasses.dataclass(frozen=True)
class BaseSettings:
    """Everything the cached base depends on."""

    frame: int = 256
    window: int = 8
    patch: int = 16
    encoder_dim: int = 64
    encoder_depth: int = 2
    train_scenes: int = 2000
    minutes: float = 15.0
    batch: int = 8
    lr: float = 3e-4
    warmup_steps: int = 50
    ramp_steps: int = 400
    box_prob: float = 0.35
    points_prob: float = 0.25
    max_clicks: int = 6
    seed: int = 0
    recipe: int = BASE_RECIPE

    def key(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def setup_threads(threads: int = 1) -> None:
    torch.set_num_threads(threads)


def small_config(frame: int = 256, window: int = 8, patch: int = 16, encoder_dim: int = 64,
                 encoder_depth: int = 2) -> ModelConfig:
    """The ``tiny`` registry config at a reduced frame; the encoder's width and depth may grow
    (one head per 32 channels, global attention in the last block)."""
    if frame % 64 or frame % patch:
        raise ValueError(f"the frame must be a multiple of 64 and of the patch size, got {frame} (patch {patch})")
    if encoder_dim % 32 or encoder_depth < 1:
        raise ValueError(f"encoder_dim must be a multiple of 32 and encoder_depth ≥ 1, got {encoder_dim}, {encoder_depth}")
    return dataclasses.replace(get_config("tiny"), image_size=frame, window_size=window, patch_size=patch,
                               encoder_embed_dim=encoder_dim, encoder_depth=encoder_depth,
                               encoder_num_heads=encoder_dim // 32,
                               encoder_global_attn_indexes=(encoder_depth - 1,))


def small_sam(settings: BaseSettings) -> torch.nn.Module:
    torch.manual_seed(settings.seed)
    return sam_from_config(small_config(settings.frame, settings.window, settings.patch, settings.encoder_dim,
                                       settings.encoder_depth))


def render_scenes(seed: int, count: int, frame: int) -> dict[str, torch.Tensor]:
    """Scenes in the frame: uint8 images B×3×S×S, int8 targets B×1×S×S (-1 padding), sizes B×2."""
    transform = ResizeLongestSide(frame)
    images = torch.zeros(count, 3, frame, frame, dtype=torch.uint8)
    targets = torch.full((count, 1, frame, frame), -1, dtype=torch.int8)
    sizes = []
    for i in range(count):
        scene = make_scene(seed, i)
        resized = transform.apply_image(scene.image)
        h, w = resized.shape[:2]
        mask = cv2.resize(scene.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        images[i, :, :h, :w] = torch.from_numpy(resized).permute(2, 0, 1)
        targets[i, 0, :h, :w] = torch.from_numpy(mask.astype(np.int8))
        sizes.append((h, w))
    return {"images": images, "targets": targets, "sizes": torch.tensor(sizes)}


def load_scenes(seed: int, count: int, frame: int) -> dict[str, torch.Tensor]:
    """``render_scenes``, cached under ``experiments/cache/`` (rendering takes ~0.1 s a scene)."""
    path = CACHE / f"scenes_{seed}_{count}_{frame}.pt"
    if path.exists():
        return torch.load(path)
    data = render_scenes(seed, count, frame)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return data


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return losses.bce_loss(logits, target) + losses.dice_loss(logits, target)


def _decode_loss(model, emb, target, points=None, boxes=None, mask_input=None) -> torch.Tensor:
    """Per-sample loss of one prompt group: a lone point gets the three-mask output and the loss
    of its best mask (SAM's ambiguity-aware loss) *plus* the loss of the single-mask token on the
    whole object (recipe 4: FocSAM decodes click 1 with that token, the role of its stage-1
    decoder fine-tune); everything else the single-mask token alone."""
    multimask = boxes is None and mask_input is None and points is not None and points[0].shape[1] == 1
    out = model.decode(emb, points, boxes=boxes, mask_input=mask_input, multimask_output=multimask)
    k = out.low_res_logits.shape[1]
    each = torch.stack([mask_loss(out.low_res_logits[:, j:j + 1], target) for j in range(k)], 1)
    iou_mse = torch.stack([losses.iou_prediction_loss(out.iou_predictions[:, j], out.low_res_logits[:, j:j + 1], target)
                           for j in range(k)], 1).mean(1)
    loss = each.min(1).values + iou_mse
    if multimask:  # the same decoder call also ran the single-mask token (output 0)
        single = out.all_low_res_logits[:, :1]
        loss = loss + mask_loss(single, target) + losses.iou_prediction_loss(out.all_iou_predictions[:, 0], single, target)
    return loss


def _click_decoder(model, emb: torch.Tensor) -> Callable:
    """``decode`` for ``simulate_iterative_clicks`` that behaves as inference does: a lone first
    click takes the three-mask output with the best predicted IoU, later clicks the single mask."""
    frame = model.image_size

    def decode(index, coords, labels, mask_input):
        return session_logits(model, emb[index], frame_points(coords, frame), labels, mask_input)

    return decode


def base_step_loss(model, emb: torch.Tensor, full: torch.Tensor, sizes: torch.Tensor, seeds: Sequence[int],
                   s: BaseSettings) -> torch.Tensor:
    """Mean loss of one batch with SAM's prompt mix (see the module docstring)."""
    frame, batch = model.image_size, emb.shape[0]
    low_res = 4 * model.prompt_encoder.image_embedding_size[0]
    target = downsample_target(full, low_res)
    kind = torch.tensor([float(np.random.default_rng([seed, 7]).uniform()) for seed in seeds])
    is_box = kind < s.box_prob
    is_points = (kind >= s.box_prob) & (kind < s.box_prob + s.points_prob)
    is_clicks = ~(is_box | is_points)
    total = torch.zeros(())
    idx = torch.nonzero(is_box).flatten()
    if idx.numel():
        rng = SampleRandom([seeds[i] for i in idx.tolist()])
        boxes = noisy_boxes(object_boxes(full[idx], frame), sizes[idx], rng, 0.1)
        total = total + _decode_loss(model, emb[idx], target[idx], boxes=boxes).sum()
    idx = torch.nonzero(is_points).flatten()
    if idx.numel():
        rng = SampleRandom([seeds[i] for i in idx.tolist()])
        coords, labels = random_positive_points(point_cells(full[idx], low_res), rng, 1, 5)
        counts = (labels >= 0).sum(1).clamp(min=1)
        for c in sorted(set(counts.tolist())):
            sel = torch.nonzero(counts == c).flatten()
            points = (frame_points(coords[sel, :c], frame), labels[sel, :c])
            total = total + _decode_loss(model, emb[idx[sel]], target[idx[sel]], points=points).sum()
    idx = torch.nonzero(is_clicks).flatten()
    if idx.numel():
        rng = SampleRandom([seeds[i] for i in idx.tolist()])
        counts = geometric_counts(rng, s.max_clicks, 0.6)
        sub_emb, sub_target = emb[idx], target[idx]
        clicks, prev, _ = simulate_iterative_clicks(_click_decoder(model, sub_emb.detach()), sub_target, counts, rng)
        for c in sorted(set(counts.tolist())):
            sel = torch.nonzero(counts == c).flatten()
            points = (frame_points(clicks.coords[sel, :c], frame), clicks.labels[sel, :c])
            mask_in = prev[sel] if c > 1 else None
            total = total + _decode_loss(model, sub_emb[sel], sub_target[sel], points=points, mask_input=mask_in).sum()
    return total / batch


@torch.no_grad()
def box_miou(model, data: dict[str, torch.Tensor], count: int = 16) -> float:
    """Low-res mIoU with the tight box on the first ``count`` scenes of ``data`` (a training-time probe)."""
    was_training = model.training
    model.eval()
    idx = torch.arange(min(count, data["images"].shape[0]))
    emb = model.encode(normalised_images(model, data["images"][idx], data["sizes"][idx]))
    full = data["targets"][idx]
    out = model.decode(emb, boxes=object_boxes(full, model.image_size), multimask_output=False)
    target = downsample_target(full, out.low_res_logits.shape[-1])
    model.train(was_training)
    return float(losses.mask_iou(out.low_res_logits, target).mean())


def train_base(model, data, s: BaseSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train all of SAM from scratch for ``s.minutes``; returns the loss history and probes."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.01)
    model.train()
    rng = np.random.default_rng(s.seed)
    count = data["images"].shape[0]
    history, probes, start, step = [], [], time.perf_counter(), 0
    budget = s.minutes * 60
    while (elapsed := time.perf_counter() - start) < budget:
        # linear warm-up, then a cosine decay over the time budget down to 10 %
        scale = min(1.0, (step + 1) / s.warmup_steps) * (0.55 + 0.45 * math.cos(math.pi * elapsed / budget))
        for group in optimizer.param_groups:
            group["lr"] = s.lr * scale
        idx = torch.from_numpy(rng.choice(count, size=s.batch, replace=False))
        emb = model.encode(normalised_images(model, data["images"][idx], data["sizes"][idx]))
        emb = emb * min(1.0, step / s.ramp_steps)  # the embedding curriculum (module docstring)
        seeds = [s.seed * 1_000_003 + step * s.batch + k for k in range(s.batch)]
        loss = base_step_loss(model, emb, data["targets"][idx], data["sizes"][idx], seeds, s)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        history.append(float(loss.detach()))
        if step % 100 == 0:
            probe = box_miou(model, data)
            probes.append((step, probe))
            log(f"base step {step} ({elapsed / 60:.1f} min): loss {np.mean(history[-100:]):.3f}, "
                f"train-scene box mIoU (low-res) {probe:.3f}")
        step += 1
    model.eval()
    return {"loss": history, "probes": probes, "steps": step, "seconds": time.perf_counter() - start}


def get_base(s: BaseSettings, data: dict[str, torch.Tensor] | None = None,
             log: Callable[[str], None] = print) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained base for settings ``s``: loaded from ``experiments/cache/`` or, when the cache
    file is missing, trained now (and cached). Returns the model (eval mode) and its training info."""
    path = CACHE / f"base_{s.key()}.pt"
    model = small_sam(s)
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["state_dict"])
        model.eval()
        log(f"base: loaded the cached base {path}")
        return model, saved["info"]
    log(f"base: no cached base at {path}; training it now ({s.minutes} min)")
    if data is None:
        data = load_scenes(TRAIN_SEED + s.seed, s.train_scenes, s.frame)
    info = train_base(model, data, s, log)
    info["settings"] = dataclasses.asdict(s)
    info["final_probe"] = box_miou(model, data)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "info": info}, path)
    log(f"base: {info['steps']} steps in {info['seconds'] / 60:.1f} min, cached at {path}")
    return model, info


def precompute_embeddings(model, data: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.encode(normalised_images(model, data["images"][i:i + 16], data["sizes"][i:i + 16]))
                          for i in range(0, data["images"].shape[0], 16)])


def train_method(method, data: dict[str, torch.Tensor], emb: torch.Tensor, minutes: float, batch: int, lr: float,
                 seed: int, weight_decay: float = 0.01, with_image: bool = False,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``method.trainable_parameters()`` with the method's own ``compute_loss`` on
    precomputed embeddings (as from an embedding store), frozen base; returns the loss history."""
    method.prepare()
    optimizer = torch.optim.AdamW([p for _, p in method.trainable_parameters()], lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed + 1)
    count = emb.shape[0]
    history, metrics, start, step = [], [], time.perf_counter(), 0
    while time.perf_counter() - start < minutes * 60:
        method.train_mode()
        idx = torch.from_numpy(rng.choice(count, size=batch, replace=False))
        b = Batch(embedding=emb[idx], target=data["targets"][idx], input_size=data["sizes"][idx],
                  rng=SampleRandom([seed * 7_000_003 + step * batch + k for k in range(batch)]), step=step,
                  image=data["images"][idx] if with_image else None)
        out = method.compute_loss(b)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        history.append(float(out.loss.detach()))
        metrics.append({k: float(v) for k, v in out.metrics.items()})
        if step % 100 == 0:
            recent = {k: np.mean([m[k] for m in metrics[-100:] if k in m]) for k in metrics[-1]}
            log(f"method step {step}: loss {np.mean(history[-100:]):.3f}"
                + "".join(f", {k} {v:.3f}" for k, v in sorted(recent.items())))
        step += 1
    method.model.eval()
    return {"loss": history, "metrics": metrics, "steps": step, "seconds": time.perf_counter() - start}


def click_protocol(model, methods: Sequence[str], seed: int, count: int, max_clicks: int = 20) -> dict[str, Any]:
    """SPEC §7.1's click protocol through ``InteractiveSession`` on held-out scenes, the same
    base image embedding for every method. Returns per method the click summary plus boundary IoU."""
    predictor = SamPredictor(model)
    curves = {m: [] for m in methods}
    boundary = {m: [] for m in methods}
    for i in range(count):
        scene = make_scene(seed, i)
        predictor.set_image(scene.image)
        gt = scene.mask.astype(np.int64)
        for method in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                session = InteractiveSession(predictor, method=method)
            pred = np.zeros(gt.shape, dtype=bool)
            clicks, ious, bious = [], [], []
            for _ in range(max_clicks):
                try:
                    click = next_click(gt, pred, clicks)
                except NoErrorLeftError:
                    ious.append(ious[-1])
                    bious.append(bious[-1])
                    continue
                clicks.append(click)
                pred = session.add_click(click.x, click.y, click.positive)
                ious.append(iou(gt, pred))
                bious.append(boundary_iou(gt, pred))
            curves[method].append(ious)
            boundary[method].append(bious)
    result = {}
    for method in methods:
        summary = summarize_click_ious(curves[method], max_clicks)
        b = np.asarray(boundary[method])
        summary["boundary_iou_at"] = {str(k): float(b[:, k - 1].mean()) for k in (1, 3, 5, 10, 20) if k <= max_clicks}
        summary["boundary_iou_1to5"] = float(b[:, :5].mean())
        summary["boundary_miou_curve"] = b.mean(0).tolist()
        summary["per_scene_iou"] = curves[method]
        result[method] = summary
    return result


def paired_difference(base: Sequence[float], method: Sequence[float]) -> dict[str, float]:
    """Per-scene paired comparison: mean difference (method − base), its standard error over
    scenes (sample standard deviation / √n), and how many scenes got better / worse (by more
    than 1e-9)."""
    a, b = np.asarray(base, dtype=float), np.asarray(method, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise ValueError(f"need two equal-length per-scene lists of at least 2 values (a standard error needs 2), "
                         f"got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("the per-scene values must be finite numbers; got NaN or infinity")
    d = b - a
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(d.size)), "better": int((d > 1e-9).sum()),
            "worse": int((d < -1e-9).sum()), "n": int(d.size)}


def describe_difference(stats: dict[str, float]) -> str:
    """``+0.0123 ± 0.0040 (+3.1 SE; 61 better, 30 worse of 100 scenes)``; with a zero standard
    error the ratio is 0 for a zero mean and ±inf otherwise."""
    if stats["se"] > 0:
        z = stats["mean"] / stats["se"]
    else:
        z = 0.0 if stats["mean"] == 0 else math.copysign(math.inf, stats["mean"])
    return (f"{stats['mean']:+.4f} ± {stats['se']:.4f} ({z:+.1f} SE; {stats['better']} better, "
            f"{stats['worse']} worse of {stats['n']} scenes)")


def loss_span(history: Sequence[float], n: int = 50) -> tuple[float, float]:
    """Mean of the first and of the last ``n`` values."""
    return float(np.mean(history[:n])), float(np.mean(history[-n:]))


def metric_tail(trained: dict[str, Any], name: str, n: int = 50) -> float:
    """Mean of a training metric (``train_method``'s ``metrics``) over the last ``n`` steps."""
    return float(np.mean([m[name] for m in trained["metrics"][-n:] if name in m]))


def smooth(values: Sequence[float], n: int = 25) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.convolve(values, np.ones(n) / n, mode="valid") if len(values) > n else values


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def base_summary(info: dict[str, Any]) -> str:
    """One paragraph on the cached base for a report."""
    s = info["settings"]
    start, end = loss_span(info["loss"])
    encoder = (f"encoder width {s.get('encoder_dim', 64)}, depth {s.get('encoder_depth', 2)}, "
               f"patch {s.get('patch', 16)}, ")
    lone = (" (a lone point trains the best of the three masks and the single-mask token, recipe 4)"
            if s.get("recipe", 0) >= 4 else "")
    return (f"Base: the `tiny` config ({encoder}window {s['window']}) at a {s['frame']}-px frame, trained from scratch "
            f"once and cached (`experiments/cache/`), {info['steps']} steps in {info['seconds'] / 60:.1f} min "
            f"(batch {s['batch']}, AdamW lr {s['lr']} with {s['warmup_steps']} warm-up steps and a cosine decay, "
            f"image embedding faded in over {s['ramp_steps']} steps) on {s['train_scenes']} scenes of family "
            f"{TRAIN_SEED + s['seed']}: boxes {s['box_prob']:.0%}, 1-5 random points {s['points_prob']:.0%}{lone}, "
            f"iterative clicks (≤ {s['max_clicks']}) otherwise; loss {start:.3f} → {end:.3f} (mean of the first/last "
            f"50 steps); box mIoU on 16 training scenes (low-res) {info['final_probe']:.3f}.")


def finish_figure(fig, ax_base, ax_method, base_hist: Sequence[float], method_hist: Sequence[float],
                  method_name: str, path: Path) -> None:
    """Draw the two training-loss panels and save the figure."""
    for ax, hist, name in ((ax_base, base_hist, "base SAM"), (ax_method, method_hist, method_name)):
        ax.plot(smooth(hist))
        ax.set_title(f"{name} training loss (25-step mean)")
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def payload(args, info: dict[str, Any], results: dict[str, Any], base_info: dict[str, Any],
            trained: dict[str, Any]) -> dict[str, Any]:
    """What ``results.json`` holds."""
    return {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "info": info,
            "results": results, "base_info": base_info, "method_loss": trained["loss"]}


def finish(out: Path, saved: dict[str, Any] | None, plot: Callable, write_report: Callable) -> None:
    """Write results.json (unless ``saved`` is None: rewrite the report and plot from it), the
    plot and report.md, and print the report."""
    if saved is None:
        saved = json.loads((out / "results.json").read_text())
    else:
        save_results(out, saved)
    plot(out, saved["results"], saved["base_info"]["loss"], saved["method_loss"])
    write_report(out, saved)
    print((out / "report.md").read_text())


def conclude(args, argv: Sequence[str] | None, script: str, label: str, prefix: str, trained: dict[str, Any],
             base_info: dict[str, Any], evaluate: Callable[[], dict[str, Any]],
             details: Callable[[], dict[str, Any]], plot: Callable, write_report: Callable,
             trained_module: torch.nn.Module | None = None) -> int:
    """The end of every experiment: report the method's training, keep the trained module's
    weights (``trained_module``, saved under the cache folder as ``trained_<script>.pt`` for
    later diagnosis; too large for git), run ``evaluate`` (timed, in inference mode), and write
    results.json, the plot and report.md.

    ``info`` in results.json holds ``{prefix}_steps``, ``{prefix}_s``, what ``details()`` returns
    (called after the evaluation, so it may read state the evaluation left), ``eval_s`` and the
    command line."""
    print(f"{label}: {trained['steps']} steps, loss {loss_span(trained['loss'])}", flush=True)
    if trained_module is not None:
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.save(trained_module.state_dict(), CACHE / f"trained_{Path(script).stem}.pt")
    start = time.perf_counter()
    with torch.inference_mode():
        results = evaluate()
    eval_s = time.perf_counter() - start
    info = {f"{prefix}_steps": trained["steps"], f"{prefix}_s": trained["seconds"], **details(),
            "eval_s": eval_s, "command": command_line(script, argv)}
    finish(args.out, payload(args, info, results, base_info, trained), plot, write_report)
    return 0


def other_runs(out: Path, described: dict[str, str]) -> str:
    """A report line linking earlier runs kept in subfolders of ``out`` (``described``: folder →
    what differs), for those that exist."""
    links = [f"[{name}/report.md]({name}/report.md) ({what})" for name, what in described.items()
             if (out / name / "report.md").exists()]
    return "\nEarlier runs of this experiment, kept for the record: " + "; ".join(links) + ".\n" if links else ""


def command_line(script: str, argv: Sequence[str] | None) -> str:
    return " ".join([".venv/bin/python", f"experiments/{script}", *(argv if argv is not None else sys.argv[1:])])


def save_results(out: Path, payload: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(payload, indent=1))


def add_common_arguments(parser, out: str, method_minutes: float, test_scenes: int) -> None:
    """The arguments every experiment takes (the base's settings, the method budget, output)."""
    d = BaseSettings()
    parser.add_argument("--out", type=Path, default=ROOT / "results" / out)
    parser.add_argument("--frame", type=int, default=d.frame)
    parser.add_argument("--patch", type=int, default=d.patch, help="the base encoder's patch size")
    parser.add_argument("--encoder-dim", type=int, default=d.encoder_dim, help="the base encoder's width")
    parser.add_argument("--encoder-depth", type=int, default=d.encoder_depth, help="the base encoder's depth")
    parser.add_argument("--train-scenes", type=int, default=d.train_scenes)
    parser.add_argument("--base-minutes", type=float, default=d.minutes)
    parser.add_argument("--base-lr", type=float, default=d.lr)
    parser.add_argument("--method-minutes", type=float, default=method_minutes)
    parser.add_argument("--test-scenes", type=int, default=test_scenes)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on the shared CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-only", action="store_true", help="rewrite report.md and the PNG from results.json")


def prepare(args) -> tuple[torch.nn.Module, dict[str, Any], dict[str, torch.Tensor]]:
    """Threads, the cached (or freshly trained) base, and the training scenes."""
    setup_threads(args.threads)
    settings = BaseSettings(frame=args.frame, patch=args.patch, encoder_dim=args.encoder_dim,
                            encoder_depth=args.encoder_depth, train_scenes=args.train_scenes, minutes=args.base_minutes,
                            lr=args.base_lr, seed=args.seed)
    data = load_scenes(TRAIN_SEED + args.seed, args.train_scenes, args.frame)
    model, info = get_base(settings, data, lambda m: print(m, flush=True))
    return model, info, data


if __name__ == "__main__":  # train (or load) the cached base alone
    import argparse

    parser = argparse.ArgumentParser(description="train the shared small base SAM and cache it")
    add_common_arguments(parser, "unused", 0.0, 0)
    prepare(parser.parse_args())
