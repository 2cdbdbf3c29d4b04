"""Fixtures of the command tests: a tiny image folder, a folder dataset, ``tiny`` posing as a real size."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image



@pytest.fixture
def images(tmp_path) -> Path:
    """A folder with two small RGB PNGs (a.png, b.png), 48x64."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture
def masks(tmp_path, images) -> Path:
    """One square object per image of ``images``."""
    folder = tmp_path / "masks"
    folder.mkdir()
    for path in images.iterdir():
        mask = np.zeros((48, 64), np.uint8)
        mask[10:30, 20:40] = 255
        Image.fromarray(mask).save(folder / path.name)
    return folder


@pytest.fixture
def train_config(tmp_path):
    """Write a one-step decoder training config for ``model`` on synthetic data; returns its path."""
    def write(model: str, **extra) -> Path:
        path = tmp_path / f"train_{model}.json"
        path.write_text(json.dumps({"method": "decoder", "model": model, "steps": 1, "batch_size": 1,
                                    "out_dir": str(tmp_path / "run"), "optim": {"warmup_steps": 0},
                                    "data": {"datasets": [{"type": "synthetic", "count": 2, "seed": 0}],
                                             "num_workers": 0}, **extra}))
        return path
    return write


@pytest.fixture
def official_tiny(monkeypatch, tmp_path):
    """``tiny`` registered as if it were a real size with an official file ``tiny_official.pth``.

    Returns ``install()``, which puts that file into the cache and returns its WeightsInfo.
    """
    import torch

    import clicksam
    from clicksam import registry
    from clicksam.cache import default_cache_dir
    from clicksam.registry import WeightsInfo

    staged = tmp_path / "staged.pth"
    torch.save(clicksam.build_sam("tiny", seed=3).state_dict(), staged)
    info = WeightsInfo("tiny_official.pth", staged.stat().st_size, hashlib.sha256(staged.read_bytes()).hexdigest(),
                       url="http://127.0.0.1:9/tiny_official.pth")  # nothing listens there: offline
    monkeypatch.setitem(registry._REGISTRY.configs, "tiny", replace(registry.get_config("tiny"), weights=info, tags=()))

    def install() -> WeightsInfo:
        cache = default_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        (cache / info.filename).write_bytes(staged.read_bytes())
        return info
    return install


@pytest.fixture
def verb_args(tmp_path, images, masks, train_config):
    def make(verb: str, model: str = "tiny", *extra: str, config_extra: dict | None = None) -> list[str]:
        if verb == "train":
            return ["train", "--config", str(train_config(model, **(config_extra or {}))), "--no-progress", *extra]
        return {
            "segment": ["segment", str(images / "a.png"), "--click", "5,5", "-o", str(tmp_path / "m.png")],
            "embed": ["embed", str(images), "--out", str(tmp_path / "emb")],
            "eval": ["eval", "--images", str(images), "--masks", str(masks), "--max-clicks", "2",
                     "--out", str(tmp_path / "ev"), "--no-progress"],
            "export-onnx": ["export-onnx", "-o", str(tmp_path / "d.onnx")],
            "serve": ["serve", "--images", str(images), "--port", "0"],
            "demo": ["demo", "--out", str(tmp_path / "demo")],
        }[verb] + ["--model", model, *extra]
    return make


@pytest.fixture
def no_serving(monkeypatch):
    """``serve`` builds everything, binds its port, then returns instead of serving forever."""
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.append((self.config.app, sockets)))
    return served
