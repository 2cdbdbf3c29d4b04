"""The trainer end to end on the tiny model: resume, loss, method file, DDP, config errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clicksam.training.config import OptimConfig, config_from_dict, load_config
from clicksam.training.run_files import read_metrics
from clicksam.training.trainer import Trainer, learning_rate

from tests.train.conftest import tiny_config


def test_learning_rate_warmup_then_decay():
    optim = OptimConfig(lr=1.0, warmup_steps=4, schedule="linear")
    lrs = [learning_rate(s, optim, 12) for s in range(12)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == 1.0 and lrs[-1] == pytest.approx(1 / 8)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    poly = OptimConfig(lr=1.0, warmup_steps=0, schedule="poly", poly_power=2.0, min_lr_ratio=0.1)
    assert learning_rate(5, poly, 10) == pytest.approx(0.1 + 0.9 * 0.25)
    assert learning_rate(7, OptimConfig(lr=2.0, warmup_steps=0, schedule="constant"), 10) == 2.0
    cosine = OptimConfig(lr=1.0, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    assert learning_rate(2, cosine, 12) == 1.0 and learning_rate(12, cosine, 12) == pytest.approx(0.1)
    assert learning_rate(7, cosine, 12) == pytest.approx(0.55)  # half way: the mean of lr and the floor


def test_config_errors_are_readable(tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        config_from_dict({"optim": {"learning_rate": 1}})
    with pytest.raises(ValueError, match="schedule"):
        config_from_dict({"optim": {"schedule": "step"}})
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_config(bad)
    toml = tmp_path / "c.toml"
    toml.write_text('model = "tiny"\nsteps = 7\n[optim]\nlr = 0.5\n')
    cfg = load_config(toml)
    assert (cfg.model, cfg.steps, cfg.optim.lr) == ("tiny", 7, 0.5)


def _run(config: dict, resume: bool = False, stop_after: int | None = None):
    trainer = Trainer(config_from_dict(config), resume=resume, progress=False)

    def on_step(t: Trainer, record: dict) -> None:
        if stop_after is not None and t.step == stop_after:
            os.kill(os.getpid(), signal.SIGTERM)  # what a cluster scheduler sends

    return trainer.run(on_step=on_step)


def test_sigterm_then_resume_repeats_the_uninterrupted_run(tmp_path, tiny_store):
    full = _run(tiny_config(tmp_path / "full", tiny_store))
    assert not full.interrupted and full.method_file is not None
    cut_config = tiny_config(tmp_path / "cut", tiny_store)
    first = _run(cut_config, stop_after=1)  # SIGTERM during step 1: the run stops after step 2
    assert first.interrupted and first.step == 2 and first.method_file is None
    assert (tmp_path / "cut" / "checkpoint.pt").is_file()
    with pytest.raises(ValueError, match="--resume"):
        Trainer(config_from_dict(cut_config), progress=False)
    changed = tiny_config(tmp_path / "cut", tiny_store, seed=4)
    with pytest.raises(ValueError, match="seed"):
        Trainer(config_from_dict(changed), resume=True, progress=False)
    second = _run(cut_config, resume=True)
    assert not second.interrupted and second.step == 4
    a = read_metrics(tmp_path / "full" / "metrics.jsonl")
    b = read_metrics(tmp_path / "cut" / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        for key in ("loss", "nfl", "point", "clicks", "lr", "grad_norm"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-7), (ra["step"], key)
    assert (tmp_path / "cut" / "loss_curve.png").stat().st_size > 1000

    # The method file holds only the decoder and loads onto a fresh tiny model.
    from safetensors import safe_open

    from clicksam.build import build_sam

    with safe_open(str(second.method_file), framework="pt") as f:
        keys = list(f.keys())
        meta = json.loads(f.metadata()["clicksam"])
    assert keys and all(k.startswith("mask_decoder.") for k in keys)
    assert meta["train_method"] == "decoder" and meta["base_model"] == "tiny"
    loaded = build_sam("tiny", checkpoint=[second.method_file])
    state = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["trainable"]
    for name, value in state.items():
        assert torch.equal(loaded.state_dict()[name], value)


@pytest.mark.slow
def test_loss_falls(tmp_path, tiny_store):
    # The tiny model's decoder starts from random weights, so within a few dozen steps it mainly
    # learns the segmentation term (NFL); the click-point term first rises as most pixels turn
    # background. The check therefore follows the NFL term of the full decoder loss.
    synthetic = {"type": "synthetic", "count": 2, "seed": 0, "size": [256, 320]}
    config = tiny_config(tmp_path / "run", tiny_store, steps=24, optim={"lr": 1e-3, "warmup_steps": 2},
                         data={"datasets": [synthetic]}, options={"max_clicks": 1, "click_map_size": 128})
    result = _run(config)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == 24 and all(r["loss"] == r["loss"] for r in records)
    nfl = [r["nfl"] for r in records]
    first, last = sum(nfl[:5]) / 5, sum(nfl[-5:]) / 5
    assert last < 0.85 * first, (first, last)
    assert 0 <= result.data_wait_fraction < 0.5


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_one_process(tmp_path, tiny_store):
    steps = 3
    single = tiny_config(tmp_path / "one", tiny_store, steps=steps)
    _run(single)
    ddp = tiny_config(tmp_path / "two", tiny_store, steps=steps)
    cfg_path = tmp_path / "ddp.json"
    cfg_path.write_text(json.dumps(ddp))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "clicksam", "train", "--config", str(cfg_path), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a = read_metrics(tmp_path / "one" / "metrics.jsonl")
    b = read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert len(a) == len(b) == steps
    for ra, rb in zip(a, b):
        for key in ("loss", "nfl", "clicks", "iou_head"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), (ra["step"], key, ra[key], rb[key])
    # Adam turns round-off in near-zero gradients into ±lr steps, so compare the whole update.
    from clicksam.training.trainer import build_base_model

    base = build_base_model("tiny").state_dict()
    wa = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)["trainable"]
    wb = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)["trainable"]
    da = torch.cat([(wa[k] - base[k]).flatten() for k in sorted(wa)])
    db = torch.cat([(wb[k] - base[k]).flatten() for k in sorted(wa)])
    assert da.norm() > 0.1  # the weights did move
    assert ((da - db).norm() / da.norm()).item() < 0.02


def test_encoder_path_matches_the_store(tmp_path, tiny_store):
    """Without a store the trainer encodes the padded batch itself: same embeddings as the store's."""
    from clicksam.train.data import collate
    from clicksam.train.store import EmbeddingStore

    config = tiny_config(tmp_path / "run", None, data={"augment": False})
    trainer = Trainer(config_from_dict(config), progress=False)
    assert trainer.dataset.with_image and trainer.store is None
    batch = collate([trainer.dataset[(0, 1)]])
    embedding = trainer._features(batch)["embedding"][0]
    stored = EmbeddingStore(tiny_store).get("synthetic-0/000001").float()
    assert embedding.shape == stored.shape
    assert (embedding - stored).abs().max().item() < 2e-2 * stored.abs().max().item()


@pytest.mark.slow
def test_bf16_autocast_step_without_store(tmp_path):
    config = tiny_config(tmp_path / "run", None, steps=1, amp="bf16", options={"max_clicks": 2, "click_map_size": 64})
    result = _run(config)
    assert result.step == 1 and result.method_file is not None
    record = read_metrics(tmp_path / "run" / "metrics.jsonl")[0]
    assert record["loss"] == record["loss"] and record["loss"] > 0  # finite, not NaN


def test_time_limit_stops_resumably_and_the_resumed_run_repeats_the_uninterrupted_one(tmp_path, tiny_store):
    full = _run(tiny_config(tmp_path / "full", tiny_store))
    cut = tiny_config(tmp_path / "cut", tiny_store)
    first = Trainer(config_from_dict(cut), progress=False).run(time_limit_s=0.0)  # the limit is met after step 1
    assert first.interrupted and first.step == 1 and first.method_file is None
    second = Trainer(config_from_dict(cut), resume=True, progress=False).run()
    assert not second.interrupted and second.step == full.step == 4
    a = read_metrics(tmp_path / "full" / "metrics.jsonl")
    b = read_metrics(tmp_path / "cut" / "metrics.jsonl")
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-5)


def test_a_given_model_outside_the_registry(tmp_path, tiny_store):
    """``Trainer(model=...)``: the caller's model trains (its stages attached from the run's seed
    when missing); a model that is not the config's is refused."""
    import dataclasses

    from clicksam.build import build_sam, sam_from_config
    from clicksam.registry import get_config

    given = build_sam("tiny", seed=0)
    config = config_from_dict({**tiny_config(tmp_path / "run", tiny_store, method="stable-sam"), "options": {}})
    trainer = Trainer(config, progress=False, model=given)
    assert trainer.model is given and given.stable_sam is not None
    before = {k: v.clone() for k, v in given.stable_sam.state_dict().items()}
    result = trainer.run()
    assert result.step == 4 and result.method_file is not None
    assert any(not torch.equal(v, given.stable_sam.state_dict()[k]) for k, v in before.items())
    other = sam_from_config(dataclasses.replace(get_config("tiny"), name="tiny-other"))
    with pytest.raises(ValueError, match="config's model"):
        Trainer(config_from_dict(tiny_config(tmp_path / "x", tiny_store)), progress=False, model=other)


def test_a_method_that_trains_the_encoder_gets_the_images(tmp_path):
    """``trains_encoder``: no embedding is computed for the method, the batch carries the image,
    and the encoder's weights change."""
    from clicksam.train.method import LossOutput, TrainMethod, register_method

    @register_method
    class EncoderProbe(TrainMethod):
        name = "test-encoder-probe"
        trainable_prefixes = ("image_encoder",)
        trains_encoder = True

        def compute_loss(self, batch):
            assert batch.embedding is None and batch.image is not None and batch.image.dtype == torch.uint8
            x = self.model.transforms().padded_batch_to_input(batch.image, batch.input_size)
            emb = self.model.encode(x)
            return LossOutput(emb.pow(2).mean(), {"l2": emb.pow(2).mean().detach()})

    config = {**tiny_config(tmp_path / "run", None, method="test-encoder-probe", steps=2,
                            optim={"lr": 1e-2, "warmup_steps": 0, "schedule": "constant"}), "options": {}}
    trainer = Trainer(config_from_dict(config), progress=False)
    before = trainer.model.image_encoder.patch_embed.proj.weight.detach().clone()
    assert trainer.run().step == 2
    assert not torch.equal(before, trainer.model.image_encoder.patch_embed.proj.weight)
