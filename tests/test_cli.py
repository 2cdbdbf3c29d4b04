"""The core `clicksam` sub-commands."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from clicksam import registry
from clicksam.cli import COMMANDS, main
from clicksam.commands.demo import EXAMPLES


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_everywhere(command, capsys):
    """Every listed sub-command exists in this build and answers --help."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: clicksam" in capsys.readouterr().out


def test_models_lists_sizes(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "sam_vit_h_4b8939.pth" in out and "2,565 MB" in out and "tiny" in out
    # the authors' FocSAM file is listed with where to get it (downloaded by hand; no published sha256)
    assert "focsam_vit_h" in out and "iter_160000.pth" in out and "1VOeMkY9LovfWYi66JMR8q79gFiC4n3Az" in out
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["focsam_vit_h"]["model"] == "vit_h" and rows["focsam_vit_h"]["sha256"] is None


def test_segment_writes_mask_and_overlay(tmp_path, capsys):
    out, overlay = tmp_path / "mask.png", tmp_path / "overlay.png"
    code = main(["segment", str(EXAMPLES / "coffee.jpg"), "--model", "tiny", "--click", "288,140", "--click", "162,323,0",
                 "--box", "100,20,500,380", "-o", str(out), "--overlay", str(overlay)])
    assert code == 0
    mask = np.asarray(Image.open(out))
    assert mask.shape == (400, 600) and set(np.unique(mask)) <= {0, 255}
    assert np.asarray(Image.open(overlay)).shape == (400, 600, 3)
    assert "untrained test model" in capsys.readouterr().out


def test_segment_bad_input_exit_2(tmp_path, capsys):
    args = ["segment", str(EXAMPLES / "coffee.jpg"), "--model", "tiny", "-o", str(tmp_path / "m.png")]
    assert main(args + ["--click", "1,2,5"]) == 2
    assert "LABEL must be 1 (positive) or 0 (negative)" in capsys.readouterr().err
    assert main(args + ["--click", "9999,2"]) == 2
    assert "outside the 600x400" in capsys.readouterr().err
    assert main(args) == 2
    assert "give at least one --click" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "none.jpg"), "--model", "tiny", "--click", "1,1", "-o", "x.png"]) == 2
    assert "image file not found" in capsys.readouterr().err


def test_segment_without_cached_weights_says_how_to_get_them(tmp_path, capsys):
    assert main(["segment", str(EXAMPLES / "coffee.jpg"), "--model", "vit_b", "--click", "1,1", "-o", str(tmp_path / "m.png")]) == 2
    assert "clicksam download vit_b" in capsys.readouterr().err


def test_embed_is_resumable(tmp_path, capsys):
    args = ["embed", str(EXAMPLES / "coffee.jpg"), str(EXAMPLES / "rocket.jpg"), "--model", "tiny", "--out", str(tmp_path / "emb")]
    torch.manual_seed(0)
    assert main(args) == 0
    assert "2 encoded, 0 already" in capsys.readouterr().out
    assert len(list((tmp_path / "emb").rglob("*.safetensors"))) == 2


def test_demo_offline_exits_2_with_instruction(tmp_path, monkeypatch, capsys):
    cfg = registry.get_config("vit_b")
    monkeypatch.setitem(registry._REGISTRY.configs, "vit_b", replace(cfg, weights=replace(cfg.weights, url="http://127.0.0.1:9/x.pth")))
    assert main(["demo", "--out", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "put it at" in out and "sam_vit_b_01ec64.pth" in out and "--model tiny" in out


@pytest.mark.slow
def test_demo_tiny_writes_gallery_and_latency_table(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "clicksam", "demo", "--model", "tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "untrained test model" in proc.stdout and "| coffee.jpg |" in proc.stdout
    assert Image.open(tmp_path / "gallery.png").size[0] > 600
    assert "per-click median" in (tmp_path / "latency.md").read_text()
