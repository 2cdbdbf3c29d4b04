"""The files of a training run: resumable checkpoint, JSONL metrics, loss-curve PNG.

``OUT/checkpoint.pt`` holds the trainable parameters, the optimiser state, the step, the RNG
states, the config and the partial logging window; it is written atomically (temporary file +
rename), so a run killed while saving still resumes from the previous checkpoint.
``OUT/metrics.jsonl`` gets one JSON object per logging window; on resumption, lines past the
checkpoint's step are dropped, so the file reads as if the run had never stopped.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import torch

from clicksam.io.atomic import atomic_write_bytes

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
PLOT_NAME = "loss_curve.png"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically write a checkpoint (tensors, numbers, strings, lists and dicts only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (no arbitrary unpickling)."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from at {path}; start the run without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unreadable file the same way
        raise ValueError(f"{path} is not a readable clicksam training checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != "clicksam-train-checkpoint":
        raise ValueError(f"{path} is not a clicksam training checkpoint")
    return state


class MetricsLog:
    """Append-only JSONL metrics, truncated to a step on resumption."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            path.write_text("")
        elif path.is_file():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            atomic_write_bytes(path, ("".join(line + "\n" for line in kept)).encode())

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")
            f.flush()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_loss_curve(metrics_path: Path, out_path: Path, title: str = "") -> Path | None:
    """Plot loss (and the method's other loss terms) against the step into a PNG; None if no data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path) if metrics_path.is_file() else []
    if not records:
        return None
    steps = [r["step"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, [r.get("loss") for r in records], label="loss", color="black", linewidth=1.5)
    for key in ("nfl", "point", "iou_head", "bce", "dice"):
        if key in records[0]:
            ax.plot(steps, [r.get(key) for r in records], label=key, linewidth=0.8, alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(out_path, buffer.getvalue())
    return out_path
