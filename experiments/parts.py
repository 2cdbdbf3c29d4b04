"""The trained parts of the small-scale experiments: the shared base, FocSAM's stage-1 decoder and
each method's module, trained once (``runs.train``) or loaded, on a given model.

A part is named by a hash of what it depends on (the model it trains on, the method, the step
budget, the seed, the optimiser, the options), so every script that needs it finds the same one:
``stable_sam_small.py --seed 1`` and ``combinations.py --seed 1`` share their Stable-SAM plugin.
With ``--keep-weights`` a finished part's float16 weights are copied to ``experiments/models/``
(``NAME.safetensors`` and ``NAME.json``, its training record); ``--reuse-trained`` loads the parts
from there and trains nothing.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

import common
import runs
import scratch  # noqa: F401  (registers the sam-scratch training method)
from clicksam.io.atomic import atomic_write_json
from clicksam.train import losses
from clicksam.train.data import downsample_target
from clicksam.train.prompts import object_boxes
from clicksam.train.readers import build_source

BASE_PREFIXES = ("image_encoder.", "prompt_encoder.", "mask_decoder.")


@dataclass
class Context:
    """The base and what every part needs."""

    settings: common.BaseSettings
    base_name: str
    base: torch.nn.Module
    base_info: dict[str, Any]
    source: dict[str, Any]
    store: Optional[Path]
    reuse: bool
    keep: bool
    time_limit_s: Optional[float]
    log: Callable[[str], None]
    device: str = "cpu"


@dataclass
class Part:
    """A trained part: its name, the model holding it (eval mode) and its training record."""

    name: str
    model: torch.nn.Module
    info: dict[str, Any]


def _log(message: str) -> None:
    print(message, flush=True)


def record(run: runs.Run, n: int = 50) -> dict[str, Any]:
    """A run's training record: loss per step (5 significant digits), steps, seconds, and each
    metric's mean over the first and the last ``n`` steps."""
    info = run.info()
    names = sorted({k for m in info["metrics"] for k in m})
    return {"loss": [float(f"{v:.5g}") for v in info["loss"]], "steps": info["steps"], "seconds": info["seconds"],
            "heads": {k: common.metric_head(info, k, n) for k in names},
            "tails": {k: common.metric_tail(info, k, n) for k in names}}


def _kept(name: str) -> tuple[Path, Path]:
    return common.MODELS / f"{name}.safetensors", common.MODELS / f"{name}.json"


def _obtain(name: str, model: torch.nn.Module, config: dict[str, Any],
            prefixes: Sequence[str], methods: Sequence[str], reuse: bool, keep: bool, time_limit_s: Optional[float],
            log: Callable[[str], None]) -> dict[str, Any]:
    """Load part ``name`` into ``model`` from ``experiments/models/`` (``reuse``, or when kept
    there) or train it (``runs.train``); returns its training record."""
    weights, meta = _kept(name)
    if weights.is_file() and meta.is_file():
        runs.load_weights(model, weights)
        log(f"{name}: loaded {weights}")
        return json.loads(meta.read_text())
    if reuse:
        raise SystemExit(f"--reuse-trained: no kept weights {weights} (and {meta.name}); train them first "
                         "(the same command without --reuse-trained, with --keep-weights)")
    run = runs.train(config, model, prefixes, methods, time_limit_s, log)
    info = record(run)
    if keep:
        weights.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.weights, weights)
        atomic_write_json(meta, info, indent=None)
        log(f"{name}: kept as {weights}")
    return info


@torch.no_grad()
def box_miou(model: torch.nn.Module, source: dict[str, Any], count: int = 16) -> float:
    """Low-res mIoU with the tight box on the first ``count`` training scenes (a probe)."""
    scenes = build_source(source)
    count = min(count, len(scenes))
    frame = model.image_size
    images = torch.zeros(count, 3, frame, frame, dtype=torch.uint8)
    targets = torch.full((count, 1, frame, frame), -1, dtype=torch.int8)
    sizes = torch.zeros(count, 2, dtype=torch.long)
    for i in range(count):
        raw = scenes.load_object(i, np.random.default_rng(0))
        h, w = raw.mask.shape
        images[i, :, :h, :w] = torch.from_numpy(raw.image).permute(2, 0, 1)
        targets[i, 0, :h, :w] = torch.from_numpy(raw.mask.astype(np.int8))
        sizes[i] = torch.tensor([h, w])
    device = next(model.parameters()).device
    images, targets, sizes = images.to(device), targets.to(device), sizes.to(device)
    emb = model.encode(model.transforms().padded_batch_to_input(images, sizes))
    out = model.decode(emb, boxes=object_boxes(targets, frame), multimask_output=False)
    target = downsample_target(targets, out.low_res_logits.shape[-1])
    return float(losses.mask_iou(out.low_res_logits, target).mean())


def context(settings: common.BaseSettings, args) -> Context:
    """The base of ``settings`` (trained once, or loaded) and the embedding store of its training
    scenes (not needed, so not built, with ``--reuse-trained``)."""
    source = runs.scene_source(settings.train_family, settings.train_scenes, settings.frame, common.CACHE / "scenes")
    device = getattr(args, "device", "cpu")
    if getattr(args, "render_workers", 1) > 1 and not args.reuse_trained:  # draw the scenes now, in parallel
        build_source({**source, "workers": args.render_workers})
    name = f"base-seed{settings.seed}_{settings.key()}"
    model = common.small_sam(settings)
    optim = {"lr": settings.lr, "weight_decay": 0.01, "warmup_steps": settings.warmup_steps, "schedule": "cosine",
             "min_lr_ratio": 0.1, "grad_clip": 1.0}
    options = {"box_prob": settings.box_prob, "points_prob": settings.points_prob, "max_clicks": settings.max_clicks,
               "ramp_steps": settings.ramp_steps}
    config = runs.run_config("sam-scratch", model, common.CACHE / "runs" / name, source, settings.steps, settings.seed,
                             settings.batch, optim, options, device=device)
    keep = getattr(args, "keep_weights", False)
    time_limit_s = args.time_limit * 60 if args.time_limit else None
    info = _obtain(name, model, config, BASE_PREFIXES, [], args.reuse_trained, keep, time_limit_s, _log)
    model.to(device).eval()
    if "final_probe" not in info:
        info = {**info, "settings": dataclasses.asdict(settings), "final_probe": box_miou(model, source),
                "weights": f"experiments/models/{name}.safetensors" if keep or args.reuse_trained else None}
        weights, meta = _kept(name)
        if weights.is_file():
            atomic_write_json(meta, info, indent=None)
    store = None
    if not args.reuse_trained:
        store = runs.ensure_store(model, source, common.CACHE / "stores" / name, _log)
    return Context(settings, name, model, info, source, store, args.reuse_trained, keep, time_limit_s, _log, device)


def method_optim(lr: float, weight_decay: float) -> dict[str, Any]:
    """The methods' optimiser in these experiments: AdamW at a constant rate, no warm-up, no clipping."""
    return {"lr": lr, "weight_decay": weight_decay, "warmup_steps": 0, "schedule": "constant", "grad_clip": 0.0}


def train_part(ctx: Context, kind: str, on: Part | None, method: str, attach: Callable[[torch.nn.Module], Any],
               steps: int, seed: int, lr: float, weight_decay: float, options: dict[str, Any],
               prefixes: Sequence[str], methods: Sequence[str], design: Any = None) -> Part:
    """A method's part trained on ``on`` (None: the base) with its ``TrainMethod`` (the frozen
    model's embeddings from the store): a copy of that model, ``attach(copy)`` run under the seed
    (the method's module and its start), then trained (or loaded)."""
    parent = on.model if on is not None else ctx.base
    parent_name = on.name if on is not None else ctx.base_name
    key = runs.digest({"on": parent_name, "method": method, "steps": steps, "seed": seed, "lr": lr,
                       "weight_decay": weight_decay, "options": options, "design": design, "batch": ctx.settings.batch})
    name = f"{kind}-seed{seed}_{key}"
    model = copy.deepcopy(parent)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        attach(model)
    model.to(ctx.device)
    config = runs.run_config(method, model, common.CACHE / "runs" / name, ctx.source, steps, seed, ctx.settings.batch,
                             method_optim(lr, weight_decay), options, store=ctx.store,
                             checkpoint=[f"experiments/models/{parent_name}.safetensors"], device=ctx.device)
    info = _obtain(name, model, config, prefixes, methods, ctx.reuse, ctx.keep, ctx.time_limit_s, ctx.log)
    model.eval()
    return Part(name, model, info)
