"""Training runs of the small-scale experiments, on the library's ``Trainer``.

Every run (the shared base, FocSAM's stage 1, each method and seed) is a ``Trainer`` run in its
own folder under ``experiments/cache/runs/``, named by a hash of everything it depends on, so a
run is trained once and then found again: by any script, for any test family. A run has a step
budget; ``time_limit_s`` stops it earlier, checkpointed, and the same command continues it (the
``Trainer`` resumes exactly). A file lock lets two scripts that need the same run at the same time
train it once: the second waits, then loads it.

Trained weights are rounded to float16 when a run ends, before anything reads them (the methods'
training on a base, the evaluation): the float16 files kept under ``experiments/models/`` are then
exactly the weights that were evaluated. ``--reuse-trained`` loads those files instead of training.
"""
from __future__ import annotations

import copy
import fcntl
import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from clicksam.checkpoint import load_method_file, read_method_file, save_method_file
from clicksam.train.store import EmbeddingStore, build_embedding_store
from clicksam.train.readers import build_source
from clicksam.training.config import config_from_dict
from clicksam.training.run_files import CHECKPOINT_NAME, METRICS_NAME, read_metrics
from clicksam.training.trainer import Trainer

Log = Callable[[str], None]


class Stopped(SystemExit):
    """A run stopped at its time limit (checkpointed): run the same command again to continue."""


def digest(value: Any) -> str:
    """A short stable hash of a JSON-ready value (run folder names)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` (waiting while another process holds it)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def scene_source(family: int, count: int, frame: int, cache: Path) -> dict[str, Any]:
    """The training scenes as a dataset entry: ``count`` scenes of ``family`` rendered once at the
    frame's size and served from memory (``RenderedSynthetic``, arrays cached under ``cache``)."""
    return {"type": "synthetic-rendered", "count": count, "seed": family, "render": frame, "cache": str(cache)}


def run_config(method: str, model: torch.nn.Module, out: Path, source: dict[str, Any], steps: int, seed: int,
               batch: int, optim: dict[str, Any], options: dict[str, Any], store: Optional[Path] = None,
               checkpoint: Sequence[str] = (), checkpoint_every: int = 50, device: str = "cpu") -> dict[str, Any]:
    """A ``TrainConfig`` dict for one experiment run (float32; no augmentation: the embeddings of
    the store are of the plain images; every scene counts, however small its object)."""
    return {
        "method": method, "model": model.model_name, "checkpoint": list(checkpoint), "device": device, "amp": "off",
        "data": {"datasets": [source], "store": str(store) if store else None, "min_area": 1, "augment": False,
                 "image_size": int(model.image_size), "num_workers": 0},
        "optim": optim, "batch_size": batch, "steps": steps, "seed": seed, "out_dir": str(out),
        "checkpoint_every": checkpoint_every, "log_every": 1, "options": options,
    }


@dataclass
class Run:
    """A finished run: its folder, its per-step metrics (``metrics.jsonl``) and its weights file."""

    folder: Path
    records: list[dict[str, Any]]
    weights: Path

    @property
    def steps(self) -> int:
        return int(self.records[-1]["step"]) if self.records else 0

    @property
    def seconds(self) -> float:
        """Training time summed over the steps (every call of a resumed run)."""
        return float(sum(1.0 / r["samples_per_s"] * r.get("batch", 8) for r in self.records if r.get("samples_per_s")))

    def series(self, name: str) -> list[float]:
        return [float(r[name]) for r in self.records if r.get(name) is not None]

    def info(self) -> dict[str, Any]:
        """The loss history and the per-step metrics, as the reports read them."""
        keys = sorted({k for r in self.records for k in r} - {"step", "loss", "lr", "grad_norm", "samples_per_s",
                                                               "data_wait_fraction", "skipped_total", "batch"})
        return {"loss": self.series("loss"), "metrics": [{k: r[k] for k in keys if r.get(k) is not None}
                                                          for r in self.records],
                "steps": self.steps, "seconds": self.seconds}


def train(config: dict[str, Any], model: torch.nn.Module, prefixes: Sequence[str], methods: Sequence[str],
          time_limit_s: Optional[float], log: Log) -> Run:
    """Train ``model`` in place with ``config`` (or load the finished run from ``config['out_dir']``),
    round the trained weights to float16 and keep them as ``weights.safetensors`` (``prefixes``:
    model attributes with a dot). Raises ``Stopped`` at the time limit."""
    out = Path(config["out_dir"])
    weights = out / "weights.safetensors"
    with locked(out):
        if not weights.is_file():
            resume = (out / CHECKPOINT_NAME).is_file()
            log(f"{config['method']}: {'resuming' if resume else 'starting'} {out.name} "
                f"({config['steps']} steps, seed {config['seed']})")
            trainer = Trainer(config_from_dict(config), resume=resume, progress=False, model=model)
            every = 100

            def report(t: Trainer, record: dict[str, Any]) -> None:
                if t.step % every == 0:
                    log(f"{config['method']} step {t.step}/{config['steps']}: loss {record['loss']:.4f}")

            result = trainer.run(on_step=report, time_limit_s=time_limit_s)
            if result.interrupted:
                raise Stopped(f"{config['method']}: stopped at step {result.step}/{config['steps']} ({out}); "
                              "run the same command again to continue")
            round_to_half(model, prefixes)
            save_method_file(weights, half_copy(model), prefixes, methods,
                             extra_metadata={"train_method": config["method"], "train_steps": config["steps"],
                                             "train_seed": config["seed"], "float16": True})
        load_weights(model, weights)
    records = [{**r, "batch": config["batch_size"]} for r in read_metrics(out / METRICS_NAME)]
    return Run(out, records, weights)


@torch.no_grad()
def round_to_half(model: torch.nn.Module, prefixes: Sequence[str]) -> None:
    """Round the parameters and buffers under ``prefixes`` to float16 values (kept as float32)."""
    for name, tensor in model.state_dict().items():
        if name.startswith(tuple(prefixes)) and tensor.is_floating_point():
            tensor.copy_(tensor.half().float())


def half_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float16 copy of ``model`` (what is written to the weights files)."""
    return copy.deepcopy(model).half()


def load_weights(model: torch.nn.Module, path: Path) -> dict[str, Any]:
    """Load a weights file written by :func:`train` into ``model`` (stages and decoder through
    ``load_method_file``; a whole base SAM, which method files may not replace, directly)."""
    tensors, meta = read_method_file(path)
    base = [p for p in meta.get("prefixes", []) if p.rstrip(".") in ("image_encoder", "prompt_encoder")]
    if not base:
        return load_method_file(model, path)
    if meta.get("base_model") != model.model_name:
        raise ValueError(f"{path} holds the base {meta.get('base_model')}, not {model.model_name}")
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
    missing = {k for k in model.state_dict() if k.split(".", 1)[0] in model.base_modules} - set(tensors)
    if missing:
        raise ValueError(f"{path}: the base file lacks {sorted(missing)[:3]}")
    model.__dict__.pop("_clicksam_encoder_digest", None)  # new encoder weights: new feature signature
    return meta


def ensure_store(model: torch.nn.Module, source: dict[str, Any], out: Path, log: Log) -> Path:
    """The embedding store of the training scenes through ``model``'s encoder (built once)."""
    with locked(out):
        if not (out / "done").is_file():
            log(f"embedding store: encoding {source['count']} scenes into {out}")
            summary = build_embedding_store([build_source(source)], out, model, shard_size=250, batch_size=16,
                                            progress=False)
            log(f"embedding store: {summary.images} images ({summary.encoded} encoded now)")
            (out / "done").write_text("")
        EmbeddingStore(out).check(model)
    return out
