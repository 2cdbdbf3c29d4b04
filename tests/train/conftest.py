"""Fixtures for the training tests: a tiny model's embedding store of synthetic scenes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SYNTHETIC = {"type": "synthetic", "count": 6, "seed": 0, "size": [256, 320]}


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """An embedding store of 6 synthetic scenes for the ``tiny`` model (seed-0 weights)."""
    from clicksam.train.readers import build_source
    from clicksam.train.store import build_embedding_store
    from clicksam.training.trainer import build_base_model

    out = tmp_path_factory.mktemp("store")
    model = build_base_model("tiny")
    build_embedding_store([build_source(SYNTHETIC)], out, model, shard_size=4, batch_size=2, progress=False)
    return out


def tiny_config(out_dir: Path, store: Path | None, **overrides: Any) -> dict[str, Any]:
    """A small decoder-training config on the synthetic scenes (a plain dict, JSON-ready)."""
    config: dict[str, Any] = {
        "method": "decoder", "model": "tiny", "device": "cpu", "seed": 3,
        "data": {"datasets": [SYNTHETIC], "store": str(store) if store else None, "num_workers": 0, "min_area": 50},
        "optim": {"lr": 1e-3, "warmup_steps": 2, "schedule": "linear"},
        "batch_size": 2, "steps": 4, "out_dir": str(out_dir), "checkpoint_every": 100, "log_every": 1,
        "options": {"max_clicks": 2, "click_map_size": 128},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config
