"""``clicksam train`` argument handling (no training here; see test_trainer for runs)."""
from __future__ import annotations

import json

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
