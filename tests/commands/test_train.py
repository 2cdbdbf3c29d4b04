"""``clicksam train`` argument handling (no training here; see test_trainer for runs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from clicksam.cli import main
from clicksam.training.config import config_from_dict
from clicksam.train.method import TrainMethod
from clicksam.training.methods import get_method


def test_print_config_round_trips(capsys):
    assert main(["train", "--method", "decoder", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["method"] == "decoder" and printed["options"]["gamma"] == 0.6
    assert config_from_dict(printed).optim.weight_decay == 0.05


def test_cli_errors(tmp_path, capsys):
    assert main(["train", "--method", "decoder"]) == 2
    assert "--config FILE is required" in capsys.readouterr().err
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"method": "decoder", "model": "tiny"}))
    assert main(["train", "--method", "focsam", "--config", str(cfg)]) == 2
    assert "contradicts" in capsys.readouterr().err


def test_method_registry():
    decoder = get_method("decoder")
    assert issubclass(decoder, TrainMethod) and decoder.trainable_prefixes == ("mask_decoder",)
    with pytest.raises(ValueError, match="unknown training method"):
        get_method("nope")
    from clicksam.training.trainer import build_base_model

    with pytest.raises(ValueError, match="no option"):
        decoder(build_base_model("tiny"), {"gama": 0.5})


def test_embed_dataset_builds_a_store(tmp_path, capsys):
    cfg = tmp_path / "data.json"
    cfg.write_text(json.dumps({"data": {"datasets": [{"type": "synthetic", "count": 2, "seed": 1, "size": [64, 96]}]}}))
    out = tmp_path / "store"
    assert main(["embed", "--dataset", str(cfg), "--model", "tiny", "--out", str(out)]) == 0
    assert "2 images" in capsys.readouterr().out
    from clicksam.train.store import EmbeddingStore
    from clicksam.training.trainer import build_base_model

    store = EmbeddingStore(out)
    store.check(build_base_model("tiny"))  # same seed-0 weights as the trainer builds
    assert store.input_sizes["synthetic-1/000001"] == (683, 1024)


RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "focsam_vit_h_stage2.json"


def _train_config(argv):
    from clicksam.cli import build_parser
    from clicksam.commands.train import _config

    return _config(build_parser().parse_args(["train", "--config", str(RECIPE), *argv]))


def test_overrides_replace_the_recipe_values(capsys):
    config = _train_config(["--model", "tiny", "--batch-size", "3", "--steps", "5", "--workers", "0",
                            "--store", "stores/x", "--out", "runs/x", "--device", "cpu"])
    assert (config.model, config.batch_size, config.steps, config.data.num_workers) == ("tiny", 3, 5, 0)
    assert (config.data.store, config.out_dir, config.device) == ("stores/x", "runs/x", "cpu")
    assert config.checkpoint == []  # the recipe's files are vit_h's: dropped, and said so
    assert "not loaded" in capsys.readouterr().err
    config = _train_config(["--model", "tiny", "--checkpoint", "a.safetensors", "--checkpoint", "b.safetensors"])
    assert config.checkpoint == ["a.safetensors", "b.safetensors"]
    config = _train_config(["--model", "vit_h"])  # the recipe's own model keeps its files
    assert config.checkpoint[-1] == "runs/focsam_vit_h_stage1/method.safetensors"
    assert config.notes and config.resume_differences({**config.to_dict(), "notes": ["other"]}) == []


def test_embed_config_errors(tmp_path, capsys):
    assert main(["embed", "--config", str(RECIPE), "--dataset", "coco", "--model", "tiny"]) == 2
    assert "not both" in capsys.readouterr().err
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": "tiny", "data": {"datasets": [{"type": "synthetic", "count": 1}]}}))
    assert main(["embed", "--config", str(cfg)]) == 2
    assert "no data.store" in capsys.readouterr().err
    assert main(["embed", "--dataset", "synthetic", "--model", "tiny"]) == 2
    assert "--dataset needs --out" in capsys.readouterr().err
    assert main(["embed", str(tmp_path)]) == 2
    assert "--out DIR is required" in capsys.readouterr().err


def test_embed_config_builds_the_recipes_store(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": "vit_b", "checkpoint": ["missing_vit_b.pth"],
                               "data": {"datasets": [{"type": "synthetic", "count": 2, "seed": 1, "size": [64, 96]}],
                                        "store": "stores/s"}}))
    monkeypatch.chdir(tmp_path)
    assert main(["embed", "--config", str(cfg), "--model", "tiny"]) == 0  # --model drops vit_b's file
    printed = capsys.readouterr().out
    assert "not loaded" in printed and "2 images in stores/s" in printed
    from clicksam.train.store import EmbeddingStore
    from clicksam.training.trainer import build_base_model

    EmbeddingStore(tmp_path / "stores" / "s").check(build_base_model("tiny"))
