"""What the small-scale experiments share: the settings of the base, the scene families, the
statistics, the report helpers and the common arguments.

The base is a small SAM (the ``tiny`` registry config at a reduced frame, ``small_config``) trained
from scratch by the library's ``Trainer`` with the ``sam-scratch`` training method
(``experiments/scratch.py``) on rendered synthetic scenes of the training family, once, and kept
(``runs.py``: the run folder under ``experiments/cache/runs/``, float16 weights under
``experiments/models/``). The methods then train on it with their own ``TrainMethod`` through the
same ``Trainer`` (``parts.py``) and are evaluated with ``clicksam.eval``'s protocols
(``evaluation.py``) on held-out scenes of a test family.

Scene families: ``make_scene(family, i)``. The base and the methods train on family
``TRAIN_SEED + base seed`` (0); the held-out scenes of the earlier sessions are family 1000
(``TEST_SEED``), the confirmation runs' family 3000 (``--test-family``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from clicksam.build import sam_from_config
from clicksam.registry import ModelConfig, get_config

ROOT = Path(__file__).resolve().parent
# trained runs, rendered scenes, stores and cached rows; CLICKSAM_EXPERIMENTS_CACHE moves it (the tests use a temporary one)
CACHE = Path(os.environ.get("CLICKSAM_EXPERIMENTS_CACHE", ROOT / "cache"))
# the float16 weights of the confirmation runs (committed); CLICKSAM_EXPERIMENTS_MODELS moves it
MODELS = Path(os.environ.get("CLICKSAM_EXPERIMENTS_MODELS", ROOT / "models"))
TRAIN_SEED, TEST_SEED = 0, 1000  # scene families: training and (earlier sessions') held-out
BASE_RECIPE = 5  # 5: the Trainer and the sam-scratch method, a step budget (1-4: experiments/common.py's own loop)


@dataclasses.dataclass(frozen=True)
class BaseSettings:
    """Everything the shared base depends on (``seed`` is the base seed, ``--base-seed``)."""

    frame: int = 256
    window: int = 8
    patch: int = 16
    encoder_dim: int = 64
    encoder_depth: int = 2
    train_scenes: int = 2000
    steps: int = 3000  # the confirmation runs' budget (SMALL_SCALE.md; session 5's 35-minute base took 4674)
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
        from runs import digest

        return digest(dataclasses.asdict(self))

    @property
    def train_family(self) -> int:
        return TRAIN_SEED + self.seed


def setup_threads(threads: int = 1) -> None:
    torch.set_num_threads(threads)


def small_config(frame: int = 256, window: int = 8, patch: int = 16, encoder_dim: int = 64,
                 encoder_depth: int = 2) -> ModelConfig:
    """The ``tiny`` registry config at a reduced frame; the encoder's width and depth may grow
    (one head per 32 channels, global attention in the last block). Named after its design
    (``model_name`` of the models and of their method files)."""
    if frame % 64 or frame % patch:
        raise ValueError(f"the frame must be a multiple of 64 and of the patch size, got {frame} (patch {patch})")
    if encoder_dim % 32 or encoder_depth < 1:
        raise ValueError(f"encoder_dim must be a multiple of 32 and encoder_depth ≥ 1, got {encoder_dim}, {encoder_depth}")
    return dataclasses.replace(get_config("tiny"), name=f"small-f{frame}-p{patch}-w{window}-e{encoder_dim}x{encoder_depth}",
                               image_size=frame, window_size=window, patch_size=patch,
                               encoder_embed_dim=encoder_dim, encoder_depth=encoder_depth,
                               encoder_num_heads=encoder_dim // 32,
                               encoder_global_attn_indexes=(encoder_depth - 1,))


def small_sam(settings: BaseSettings) -> torch.nn.Module:
    """An untrained small SAM of ``settings``' design (initialised from the base seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        return sam_from_config(small_config(settings.frame, settings.window, settings.patch, settings.encoder_dim,
                                            settings.encoder_depth))


# ---------------------------------------------------------------------------------- statistics
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


def across_seeds(values: Sequence[float]) -> dict[str, Any]:
    """Mean and standard error (sample sd / √k) of one number per seed, with the values."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"need one value per seed for at least 2 seeds, got shape {v.shape}")
    return {"mean": float(v.mean()), "se": float(v.std(ddof=1) / np.sqrt(v.size)), "values": [float(x) for x in v],
            "n": int(v.size)}


# ------------------------------------------------------------------------------- report helpers
def loss_span(history: Sequence[float], n: int = 50) -> tuple[float, float]:
    """Mean of the first and of the last ``n`` values."""
    return float(np.mean(history[:n])), float(np.mean(history[-n:]))


def metric_tail(trained: dict[str, Any], name: str, n: int = 50) -> float:
    """Mean of a training metric (a run's per-step ``metrics``) over the last ``n`` steps."""
    return float(np.mean([m[name] for m in trained["metrics"][-n:] if name in m]))


def metric_head(trained: dict[str, Any], name: str, n: int = 50) -> float:
    """Mean of a training metric over the first ``n`` steps."""
    return float(np.mean([m[name] for m in trained["metrics"][:n] if name in m]))


def smooth(values: Sequence[float], n: int = 25) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.convolve(values, np.ones(n) / n, mode="valid") if len(values) > n else values


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def test_family(args: dict[str, Any]) -> int:
    """The held-out family of a run's arguments (earlier runs: ``TEST_SEED + seed``)."""
    return int(args["test_family"]) if args.get("test_family") is not None else TEST_SEED + int(args["seed"])


def train_family(args: dict[str, Any]) -> int:
    """The training family of a run's arguments (earlier runs: ``TRAIN_SEED + seed``)."""
    return TRAIN_SEED + int(args["base_seed"] if "base_seed" in args else args["seed"])


def seeds_line(args: dict[str, Any], info: dict[str, Any]) -> str:
    """`` Seeds: base B, method S; weights ...`` for a run that records its seeds (else "")."""
    if "base_seed" not in args:
        return ""
    kept = "".join(f"; {role} `experiments/models/{name}.safetensors`" for role, name in info.get("parts", {}).items()
                   if info.get("weights_kept"))
    return f" Seeds: base {args['base_seed']}, method {args['seed']}{kept}."


def base_summary(info: dict[str, Any]) -> str:
    """One paragraph on the base for a report."""
    s = info["settings"]
    start, end = loss_span(info["loss"])
    encoder = (f"encoder width {s.get('encoder_dim', 64)}, depth {s.get('encoder_depth', 2)}, "
               f"patch {s.get('patch', 16)}, ")
    lone = (" (a lone point trains the best of the three masks and the single-mask token, recipe 4)"
            if s.get("recipe", 0) == 4 else
            " (a lone point trains the best of the three masks and the single-mask token)" if s.get("recipe", 0) > 4
            else "")
    if s.get("recipe", 0) >= 5:
        how = (f"trained from scratch by the library's `Trainer` with the `sam-scratch` method (`experiments/scratch.py`), "
               f"base seed {s['seed']}, {info['steps']} steps in {info['seconds'] / 60:.1f} min "
               f"(batch {s['batch']}, AdamW lr {s['lr']} with {s['warmup_steps']} warm-up steps and a cosine decay to 10 %, "
               f"image embedding faded in over {s['ramp_steps']} steps), weights rounded to float16"
               + (f" (`{info['weights']}`)" if info.get("weights") else ""))
    else:
        how = (f"trained from scratch "
               f"once and cached (`experiments/cache/`), {info['steps']} steps in {info['seconds'] / 60:.1f} min "
               f"(batch {s['batch']}, AdamW lr {s['lr']} with {s['warmup_steps']} warm-up steps and a cosine decay, "
               f"image embedding faded in over {s['ramp_steps']} steps)")
    return (f"Base: the `tiny` config ({encoder}window {s['window']}) at a {s['frame']}-px frame, {how} on "
            f"{s['train_scenes']} scenes of family "
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
             details: Callable[[], dict[str, Any]], plot: Callable, write_report: Callable) -> int:
    """The end of every experiment: report the method's training, run ``evaluate`` (timed), and
    write results.json, the plot and report.md.

    ``info`` in results.json holds ``{prefix}_steps``, ``{prefix}_s``, what ``details()`` returns
    (called after the evaluation, so it may read state the evaluation left), ``eval_s``, the
    seeds and test family, and the command line."""
    import time

    print(f"{label}: {trained['steps']} steps, loss {loss_span(trained['loss']) if trained['loss'] else '-'}", flush=True)
    start = time.perf_counter()
    with torch.inference_mode():
        results = evaluate()
    eval_s = time.perf_counter() - start
    info = {f"{prefix}_steps": trained["steps"], f"{prefix}_s": trained["seconds"], **details(),
            "eval_s": eval_s, "seed": args.seed, "base_seed": args.base_seed, "test_family": args.test_family,
            "weights_kept": bool(getattr(args, "keep_weights", False) or args.reuse_trained),
            "command": command_line(script, argv)}
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
    """Write ``out/results.json``; a folder that already holds one is refused (runs are kept,
    never overwritten)."""
    from clicksam.io.atomic import atomic_write_text

    if (out / "results.json").exists():
        raise SystemExit(f"{out} already holds a run (results.json); choose another --out: runs are kept, never "
                         "overwritten")
    atomic_write_text(out / "results.json", json.dumps(payload, indent=1))


def check_out(args) -> None:
    """Refuse, before any work, an ``--out`` that already holds a run (``--report-only`` aside)."""
    if not args.report_only and (args.out / "results.json").exists():
        raise SystemExit(f"{args.out} already holds a run (results.json); choose another --out: runs are kept, "
                         "never overwritten (--report-only rewrites its report)")


def add_common_arguments(parser, out: str, method_steps: int, test_scenes: int) -> None:
    """The arguments every experiment takes: the base's settings, the seeds, the method's step
    budget, the held-out scenes, a time limit and the output folder."""
    d = BaseSettings()
    parser.add_argument("--out", type=Path, default=ROOT / "results" / out)
    parser.add_argument("--frame", type=int, default=d.frame)
    parser.add_argument("--patch", type=int, default=d.patch, help="the base encoder's patch size")
    parser.add_argument("--encoder-dim", type=int, default=d.encoder_dim, help="the base encoder's width")
    parser.add_argument("--encoder-depth", type=int, default=d.encoder_depth, help="the base encoder's depth")
    parser.add_argument("--train-scenes", type=int, default=d.train_scenes)
    parser.add_argument("--base-steps", type=int, default=d.steps, help="the base's step budget")
    parser.add_argument("--base-lr", type=float, default=d.lr)
    parser.add_argument("--base-seed", type=int, default=0, help="fixes the shared base (its init, data order, prompts)")
    parser.add_argument("--method-steps", type=int, default=method_steps, help="the method's step budget")
    parser.add_argument("--seed", type=int, default=0, help="the method's training seed (its init, data order, prompts)")
    parser.add_argument("--test-family", type=int, default=TEST_SEED, help="the scene family evaluated (held out)")
    parser.add_argument("--test-scenes", type=int, default=test_scenes)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on the shared CPU)")
    parser.add_argument("--device", default="cpu", help="where everything trains and runs (cpu, cuda)")
    parser.add_argument("--render-workers", type=int, default=1,
                        help="processes that draw the training scenes the first time (they are then cached)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="minutes of training for this call: a run still unfinished then is checkpointed and "
                             "the same command continues it")
    parser.add_argument("--reuse-trained", action="store_true",
                        help="no training: evaluate the float16 weights kept under experiments/models/")
    parser.add_argument("--report-only", action="store_true", help="rewrite report.md and the PNG from results.json")


def base_settings(args) -> BaseSettings:
    return BaseSettings(frame=args.frame, patch=args.patch, encoder_dim=args.encoder_dim,
                        encoder_depth=args.encoder_depth, train_scenes=args.train_scenes, steps=args.base_steps,
                        lr=args.base_lr, batch=args.batch, seed=args.base_seed)


def prepare(args):
    """Threads, the base (trained, loaded from the cache or from ``experiments/models/``) and
    what the methods train on: returns ``parts.Context``."""
    import parts

    setup_threads(args.threads)
    check_out(args)
    return parts.context(base_settings(args), args)
