"""The training loop shared by every method: plain PyTorch, one process or DDP under torchrun.

Per step: take this process's share of the global batch (``GlobalBatchSampler``), get the
embeddings (from the store, or from the frozen encoder; a method that trains the encoder gets the
images), let the method compute its loss, step AdamW (linear warm-up, then linear / poly / cosine
decay) after gradient clipping, under bf16 autocast on GPUs. The budget is ``config.steps``; a run
may also stop earlier, resumably, at ``run(stop_at=...)``, after ``run(time_limit_s=...)`` seconds,
or when SIGTERM arrives. Every ``checkpoint_every`` steps and whenever it stops,
``OUT/checkpoint.pt`` is written; ``--resume`` restores parameters, optimiser, step and RNG state,
and because every sample and every prompt draw is a function of (seed, epoch, index), the resumed
run repeats the uninterrupted one exactly. At the end: ``OUT/method.safetensors`` (only trainable parameters, the
method-file format of ``clicksam.checkpoint``), ``OUT/metrics.jsonl`` and ``OUT/loss_curve.png``.
"""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.distributed as dist

from clicksam.training.config import OptimConfig, TrainConfig
from clicksam.train.data import FEATURE_PREFIX, GlobalBatchSampler, ObjectDataset, PhotometricAugment, collate
from clicksam.train.method import Batch, LossModule, TrainMethod
from clicksam.training.methods import get_method
from clicksam.train.prompts import SampleRandom
from clicksam.train.readers import build_source
from clicksam.training.run_files import (CHECKPOINT_NAME, METRICS_NAME, PLOT_NAME, MetricsLog, load_checkpoint,
                                      plot_loss_curve, save_checkpoint)


def build_base_model(name: str, checkpoint: Optional[Sequence[str | os.PathLike]] = None, methods: Sequence[str] = (),
                     device: str | torch.device = "cpu", trust_checkpoint: bool = False,
                     random_weights: bool = False) -> torch.nn.Module:
    """``build_sam`` with its initialisation seed fixed at 0, so untrained test models (``tiny``)
    and freshly attached stages get the same weights in every process, run and store build."""
    from clicksam.build import build_sam

    return build_sam(name, checkpoint=list(checkpoint) if checkpoint else None, methods=tuple(methods),
                     device=device, trust_checkpoint=trust_checkpoint, seed=0, random_weights=random_weights)


def _given_model(model: torch.nn.Module, config: TrainConfig, stages: Sequence[str],
                 device: torch.device) -> torch.nn.Module:
    """A caller's model for the run (see ``Trainer``): named as the config says, with the method's
    stages (attached untrained from ``config.seed`` when missing), on the run's device."""
    from clicksam.methods import attach_stage

    name = getattr(model, "model_name", None)
    if name != config.model:
        raise ValueError(f"the given model is {name!r} but the config's model is {config.model!r}; "
                         "set config.model to the model's model_name")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        for stage in stages:
            attach_stage(model, stage)
    return model.to(device)


def learning_rate(step: int, optim: OptimConfig, total_steps: int) -> float:
    """LR at 0-based ``step``: linear warm-up to ``lr`` over ``warmup_steps``, then linear,
    polynomial (``poly_power``) or half-cosine decay to ``min_lr_ratio``·lr at ``total_steps``, or
    constant."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return optim.lr
    progress = min(1.0, (step - optim.warmup_steps) / max(1, total_steps - optim.warmup_steps))
    floor = optim.lr * optim.min_lr_ratio
    if optim.schedule == "cosine":
        return floor + (optim.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    power = 1.0 if optim.schedule == "linear" else optim.poly_power
    return floor + (optim.lr - floor) * (1.0 - progress) ** power


@dataclass
class TrainResult:
    """What ``Trainer.run`` did. ``interrupted``: stopped before ``config.steps`` (SIGTERM,
    ``stop_at`` or the time limit), resumable."""

    step: int
    interrupted: bool
    out_dir: Path
    method_file: Optional[Path]
    last_loss: float
    samples_per_s: float
    data_wait_fraction: float


def _distributed_context(device_pref: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_pref == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    elif device_pref.startswith("cuda") and ":" not in device_pref:
        device = torch.device(f"cuda:{local_rank}")
    else:
        device = torch.device(device_pref)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    launched = "RANK" in os.environ and "MASTER_ADDR" in os.environ  # torchrun, even with one process
    if (world > 1 or launched) and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, (dist.get_world_size() if dist.is_initialized() else 1), device


class Trainer:
    """One training run (see the module docstring).

    Args:
        config: the run's configuration.
        resume: continue from ``OUT/checkpoint.pt`` (it must exist and match the config).
        progress: show a tqdm bar on rank 0.
        model: a model built by the caller instead of ``build_sam(config.model, config.checkpoint)``,
            for a design the model registry does not hold (e.g. the experiments' small SAMs);
            ``config.model`` must then be its ``model_name`` and ``config.checkpoint`` only records
            where its weights came from. The method's stages are attached when missing (untrained,
            initialised from ``config.seed``). A resumed run needs the same model again.
    """

    def __init__(self, config: TrainConfig, resume: bool = False, progress: bool = True,
                 model: Optional[torch.nn.Module] = None) -> None:
        self.config = config.validate()
        self.rank, self.world, self.device = _distributed_context(config.device)
        self.out = Path(config.out_dir)
        self.progress = progress and self.rank == 0
        state = load_checkpoint(self.out / CHECKPOINT_NAME) if resume else None
        if state is not None:
            diffs = config.resume_differences(state["config"])
            if diffs:
                raise ValueError(f"cannot resume {self.out}: the config changed in {diffs}; "
                                 "resume with the original config or start a new out_dir")
        elif (self.out / CHECKPOINT_NAME).is_file():
            raise ValueError(f"{self.out} already holds a run; pass --resume to continue it or choose another out_dir")
        torch.manual_seed(config.seed)
        method_cls = get_method(config.method)
        if model is None:
            checkpoints = [os.path.expanduser(p) for p in config.checkpoint]
            model = build_base_model(config.model, checkpoints, method_cls.stages, self.device,
                                     random_weights=config.random_weights)
        else:
            model = _given_model(model, config, method_cls.stages, self.device)
        if config.data.image_size != model.image_size:
            raise ValueError(f"data.image_size {config.data.image_size} differs from the model's input size {model.image_size}")
        self.model = model
        self.method: TrainMethod = method_cls(model, config.options)
        self.method.prepare()
        self.params = self.method.trainable_parameters()
        if not self.params:
            raise RuntimeError(f"method '{config.method}' has no trainable parameters")
        self.store = None
        if config.data.store:
            from clicksam.train.store import EmbeddingStore

            self.store = EmbeddingStore(config.data.store)
            self.store.check(model)
        self.sources = [build_source(spec, config.data.min_area) for spec in config.data.datasets]
        self.dataset = ObjectDataset(
            self.sources, seed=config.seed, image_size=config.data.image_size, min_area=config.data.min_area,
            augment=PhotometricAugment() if config.data.augment else None,
            with_image=self.store is None or method_cls.needs_image or method_cls.trains_encoder, store=self.store,
            transforms=model.transforms(),
        )
        decay = [p for n, p in self.params if p.dim() >= 2]
        no_decay = [p for n, p in self.params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": config.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=config.optim.lr,
                                           betas=config.optim.betas, foreach=True)
        self.step = 0
        self.window: dict[str, Any] = {"count": 0, "sums": {}, "wait": 0.0, "time": 0.0}
        self.skipped = 0
        self._rng_state: Optional[dict[str, Any]] = None
        if state is not None:
            self._restore(state)
        self.loss_module = LossModule(self.method)
        self.ddp: Optional[torch.nn.Module] = None
        if dist.is_initialized():
            from torch.nn.parallel import DistributedDataParallel

            # device_ids=None: batches are already on this process's device (Batch is not a tensor tree).
            self.ddp = DistributedDataParallel(self.loss_module, device_ids=None, broadcast_buffers=False,
                                               find_unused_parameters=method_cls.find_unused_parameters)
        self.use_bf16 = config.amp == "bf16" or (config.amp == "auto" and self.device.type == "cuda")
        self._stop = False
        self._stop_agreed = False

    # ----------------------------------------------------------------- state
    def _restore(self, state: dict[str, Any]) -> None:
        names = {n for n, _ in self.params}
        saved = state["trainable"]
        if set(saved) != names:
            raise ValueError(f"checkpoint parameters do not match method '{self.config.method}': "
                             f"missing {sorted(names - set(saved))[:5]}, unexpected {sorted(set(saved) - names)[:5]}")
        with torch.no_grad():
            for name, param in self.params:
                param.copy_(saved[name].to(param.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.window = json.loads(state["window"])
        self.skipped = int(state["skipped"])
        self._rng_state = {"torch": state["torch_rng"], "cuda": state.get("cuda_rng")}

    def _state(self) -> dict[str, Any]:
        return {
            "format": "clicksam-train-checkpoint", "version": 1, "step": self.step, "method": self.config.method,
            "config": self.config.to_dict(), "trainable": {n: p.detach().cpu() for n, p in self.params},
            "optimizer": self.optimizer.state_dict(), "window": json.dumps(self.window), "skipped": self.skipped,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }

    def save(self) -> None:
        """Write the resumable checkpoint (rank 0) and wait for every process."""
        if self.rank == 0:
            save_checkpoint(self.out / CHECKPOINT_NAME, self._state())
        if dist.is_initialized():
            dist.barrier()

    def request_stop(self, *_: Any) -> None:
        """Finish the current step, checkpoint and return (the SIGTERM handler)."""
        self._stop = True

    # ------------------------------------------------------------------ step
    def _loader(self) -> torch.utils.data.DataLoader:
        sampler = GlobalBatchSampler(len(self.dataset), self.config.batch_size, self.rank, self.world,
                                     self.config.seed, start_step=self.step)
        workers = self.config.data.num_workers
        return torch.utils.data.DataLoader(
            self.dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
        )

    def _features(self, data: dict[str, torch.Tensor]) -> Optional[dict[str, torch.Tensor]]:
        """The batch's feature bundle (float32 on the device): from the store, or the frozen encoder;
        None for a method that trains the encoder (it encodes ``batch.image`` itself, with gradient)."""
        if self.method.trains_encoder:
            return None
        stored = {k[len(FEATURE_PREFIX):]: v for k, v in data.items() if k.startswith(FEATURE_PREFIX)}
        if stored:
            return {name: t.to(self.device, non_blocking=True).float() for name, t in stored.items()}
        image = data["image"].to(self.device, non_blocking=True)
        x = self.model.transforms().padded_batch_to_input(image, data["input_size"])
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            return {name: t.float() for name, t in self.model.encode_features(x).items()}

    def _train_step(self, data: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        lr = learning_rate(self.step, self.config.optim, self.config.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        features = self._features(data)
        batch = Batch(
            embedding=None if features is None else features[self.model.embedding_key], features=features,
            target=data["target"].to(self.device, non_blocking=True),
            input_size=data["input_size"].to(self.device), rng=SampleRandom(data["seed"].tolist(), self.device),
            step=self.step, index=data["index"],
            image=(data["image"].to(self.device, non_blocking=True)
                   if self.method.needs_image or self.method.trains_encoder else None),
        )
        self.method.train_mode()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            loss, metrics = (self.ddp or self.loss_module)(batch)
        if not bool(torch.isfinite(loss.detach())):
            raise RuntimeError(f"the loss became {loss.item()} at step {self.step}; lower optim.lr or check the data "
                               f"(the last checkpoint in {self.out} is intact)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.optim.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_([p for _, p in self.params], clip if clip > 0 else float("inf"))
        self.optimizer.step()
        names = sorted(metrics)
        values = torch.stack([loss.detach().float(), grad_norm.float().to(self.device)]
                             + [metrics[k].detach().float().to(self.device) for k in names]
                             + [torch.tensor(float(self._stop), device=self.device),
                                data["skipped"].sum().float().to(self.device)])
        if dist.is_initialized():
            dist.all_reduce(values)
            values[:-2] /= self.world
        out = values.tolist()
        # Every process stops at the same step: after the step in which any of them was asked to.
        self._stop_agreed = out[-2] > 0
        self.skipped += int(out[-1])
        record = {"loss": out[0], "grad_norm": out[1], "lr": lr, **dict(zip(names, out[2:-2]))}
        return out[0], record

    # ------------------------------------------------------------------- run
    def run(self, stop_at: Optional[int] = None,
            on_step: Optional[Callable[["Trainer", dict[str, Any]], None]] = None,
            time_limit_s: Optional[float] = None) -> TrainResult:
        """Train until ``config.steps``, or stop earlier (checkpointed, resumable) at step
        ``stop_at``, after ``time_limit_s`` seconds of this call, or on SIGTERM; returns a
        ``TrainResult``. ``on_step(trainer, record)`` is called after every step."""
        from tqdm import tqdm

        cfg = self.config
        resume_step = self.step if self._rng_state is not None else None
        log = MetricsLog(self.out / METRICS_NAME, resume_step) if self.rank == 0 else None
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
            skipped = {f"{s.name}": dict(s.skipped) for s in self.sources if s.skipped}
            if skipped:
                print(f"annotations skipped while indexing: {skipped}")
        loader_iter = iter(self._loader())
        if self._rng_state is not None:  # after the loader took its worker seeds, as in the first run
            torch.set_rng_state(self._rng_state["torch"])
            if self._rng_state.get("cuda") is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(self._rng_state["cuda"], self.device)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self.request_stop)
        end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.method}", unit="step", disable=not self.progress)
        last_loss, interrupted = float("nan"), False
        self._stop = self._stop_agreed = False
        started = time.perf_counter()
        total_time = total_wait = 0.0
        steps_timed = 0
        try:
            while self.step < end:
                t0 = time.perf_counter()
                data = next(loader_iter)
                t1 = time.perf_counter()
                last_loss, record = self._train_step(data)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                t2 = time.perf_counter()
                self.step += 1
                total_time += t2 - t0
                total_wait += t1 - t0
                steps_timed += 1
                self._accumulate(record, t1 - t0, t2 - t0)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self._flush(log)
                bar.update(1)
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{record['lr']:.2e}")
                if on_step is not None:
                    on_step(self, record)
                if time_limit_s is not None and time.perf_counter() - started >= time_limit_s:
                    self._stop = True  # under DDP every process agrees at the next step, as for SIGTERM
                    self._stop_agreed = self._stop_agreed or not dist.is_initialized()
                if self._stop_agreed:
                    interrupted = self.step < cfg.steps
                    break
                if self.step % cfg.checkpoint_every == 0 and self.step < end:
                    self.save()
            interrupted = interrupted or self.step < cfg.steps
            self.save()
        finally:
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        method_file = self._finish(interrupted)
        if interrupted and self.rank == 0:
            print(f"stopped at step {self.step}/{cfg.steps}; continue with --resume (checkpoint {self.out / CHECKPOINT_NAME})")
        return TrainResult(self.step, interrupted, self.out, method_file, last_loss,
                           cfg.batch_size * steps_timed / total_time if total_time > 0 else 0.0,
                           total_wait / total_time if total_time > 0 else 0.0)

    def _accumulate(self, record: dict[str, Any], wait: float, elapsed: float) -> None:
        w = self.window
        for key, value in record.items():
            w["sums"][key] = w["sums"].get(key, 0.0) + float(value)
        w["count"] += 1
        w["wait"] += wait
        w["time"] += elapsed

    def _flush(self, log: Optional[MetricsLog]) -> None:
        w = self.window
        if w["count"] and log is not None:
            record = {"step": self.step, **{k: v / w["count"] for k, v in sorted(w["sums"].items())},
                      "samples_per_s": self.config.batch_size * w["count"] / max(w["time"], 1e-9),
                      "data_wait_fraction": w["wait"] / max(w["time"], 1e-9), "skipped_total": self.skipped}
            log.write(record)
        self.window = {"count": 0, "sums": {}, "wait": 0.0, "time": 0.0}

    def _finish(self, interrupted: bool) -> Optional[Path]:
        """Rank 0: the loss curve always, the method file when the run completed."""
        if self.rank != 0:
            return None
        plot_loss_curve(self.out / METRICS_NAME, self.out / PLOT_NAME, f"{self.config.method} on {self.config.model}")
        if interrupted:
            return None
        from clicksam.checkpoint import save_method_file

        return save_method_file(
            self.out / "method.safetensors", self.model, [p + "." for p in self.method.file_prefixes()],
            self.method.stages, extra_metadata={"train_method": self.config.method, "train_steps": self.step,
                                                "train_config": self.config.to_dict()},
        )
