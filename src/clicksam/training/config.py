"""Training configuration: a JSON (or TOML) file mapped onto dataclasses.

Example (``clicksam train --method decoder --print-config`` writes a complete one)::

    {
      "model": "vit_b", "checkpoint": ["~/.cache/clicksam/sam_vit_b_01ec64.pth"],
      "data": {"datasets": [{"type": "coco-panoptic", "root": "/data/coco"}, {"type": "lvis", "root": "/data/coco"}],
               "store": "/data/stores/coco_vit_b", "min_area": 1000, "num_workers": 4},
      "optim": {"lr": 1e-4, "weight_decay": 0.05, "warmup_steps": 1500, "schedule": "linear"},
      "batch_size": 16, "steps": 320000, "checkpoint_every": 5000, "out_dir": "runs/decoder",
      "options": {"max_clicks": 20, "gamma": 0.6}
    }

``batch_size`` is the global batch: with N processes each takes ``batch_size / N`` samples.
``options`` go to the training method (each method documents its own).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

SCHEDULES = ("linear", "poly", "cosine", "constant")
AMP_MODES = ("auto", "bf16", "off")


@dataclass
class DataConfig:
    """datasets: reader specs (``{"type": ..., "root": ..., ...}``, see ``clicksam.train.readers``);
    store: embedding store folder (None: run the frozen encoder every step); augment: photometric
    augmentation of the image pixels (only seen by methods that read pixels or without a store)."""

    datasets: list[dict[str, Any]] = field(default_factory=lambda: [{"type": "synthetic", "count": 64, "seed": 0}])
    store: Optional[str] = None
    min_area: int = 100
    augment: bool = True
    image_size: int = 1024
    num_workers: int = 2


@dataclass
class OptimConfig:
    """AdamW with linear warm-up, then linear, polynomial or half-cosine decay to
    ``min_lr_ratio``·lr (or a constant rate)."""

    lr: float = 1e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 1500
    schedule: str = "linear"
    poly_power: float = 1.0
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    """A training run. ``method`` is set from ``--method`` when the file leaves it out; ``notes``
    is free text (lines) about the run's provenance and cost, kept in the run's files and ignored
    by the trainer (the recipes in ``recipes/`` use it)."""

    method: str = "decoder"
    model: str = "vit_b"
    checkpoint: list[str] = field(default_factory=list)
    random_weights: bool = False  # a real size with random base weights on purpose (see build_sam)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 16
    steps: int = 1000
    seed: int = 0
    out_dir: str = "runs/train"
    checkpoint_every: int = 1000
    log_every: int = 10
    amp: str = "auto"
    device: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "TrainConfig":
        """Raise ValueError naming the first bad field."""
        checks = [
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.amp in AMP_MODES, f"amp must be one of {AMP_MODES}, got {self.amp!r}"),
            (self.optim.schedule in SCHEDULES, f"optim.schedule must be one of {SCHEDULES}, got {self.optim.schedule!r}"),
            (self.optim.lr > 0, f"optim.lr must be > 0, got {self.optim.lr}"),
            (self.optim.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {self.optim.warmup_steps}"),
            (0 <= self.optim.min_lr_ratio <= 1, f"optim.min_lr_ratio must be in [0, 1], got {self.optim.min_lr_ratio}"),
            (self.optim.grad_clip >= 0, f"optim.grad_clip must be >= 0 (0 = off), got {self.optim.grad_clip}"),
            (bool(self.data.datasets), "data.datasets is empty; list at least one dataset"),
            (self.data.num_workers >= 0, f"data.num_workers must be >= 0, got {self.data.num_workers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"training config: {message}")
        return self

    # Fields that may change between an interrupted run and its resumption.
    RESUME_FREE = ("out_dir", "device", "log_every", "checkpoint_every", "data.num_workers", "notes")

    def resume_differences(self, saved: dict[str, Any]) -> list[str]:
        """Fields (dotted) that differ from a saved config and would change the run's result."""
        before = _flatten(json.loads(json.dumps(saved)))
        current = _flatten(json.loads(json.dumps(self.to_dict())))
        defaults = _flatten(json.loads(json.dumps(TrainConfig().to_dict())))
        for key, value in defaults.items():  # a field added since the run was saved, left at its default
            if key not in before and current.get(key) == value:
                before[key] = value
        return sorted(k for k in set(current) | set(before)
                      if k not in self.RESUME_FREE and current.get(k) != before.get(k))


def override_model(config: TrainConfig, model: Optional[str] = None,
                   checkpoint: Optional[list[str]] = None) -> Optional[str]:
    """Replace the config's model and/or checkpoint files (``--model`` / ``--checkpoint``).

    A config's checkpoint files belong to its model, so ``model`` given without ``checkpoint``
    drops them when it names another model (``--model tiny`` runs a ViT-H recipe on the test
    model). Returns a note saying what was dropped, or None.
    """
    note = None
    if model is not None and model != config.model:
        if checkpoint is None and config.checkpoint:
            note = (f"--model {model} replaces {config.model}: the config's checkpoint files ({', '.join(config.checkpoint)}) "
                    f"are for {config.model} and are not loaded; pass --checkpoint to load files")
            config.checkpoint = []
        config.model = model
    if checkpoint is not None:
        config.checkpoint = [str(p) for p in checkpoint]
    return note


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "options":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"training config: '{where}' must be a table/object, got {type(values).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"training config: unknown key(s) {unknown} in '{where}'; known: {sorted(names)}")
    kwargs = {}
    for key, value in values.items():
        if key == "data":
            value = _build(DataConfig, value, "data")
        elif key == "optim":
            value = _build(OptimConfig, value, "optim")
        elif key == "betas":
            value = tuple(float(v) for v in value)
        elif key in ("checkpoint", "notes") and isinstance(value, str):
            value = [value]
        kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A validated ``TrainConfig`` from a plain dict (unknown keys are an error)."""
    return _build(TrainConfig, values, "top level").validate()


def load_config(path: str | Path) -> TrainConfig:
    """Read a ``.json`` or ``.toml`` training config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError as exc:  # pragma: no cover - Python 3.10
            raise RuntimeError("TOML configs need Python 3.11+; use a .json config") from exc
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from exc
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON: {exc}") from exc
    return config_from_dict(values)
