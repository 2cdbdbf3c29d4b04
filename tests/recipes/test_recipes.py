"""Every recipe in ``recipes/`` runs for 2 steps on ``tiny``, on miniature datasets in the real layouts.

The commands are the guide's (docs/training.md): ``clicksam embed --config RECIPE`` builds the
store the recipe reads, then ``clicksam train --config RECIPE`` trains, here with ``--model tiny
--steps 2 --batch-size 2 --workers 0``. The working folder holds ``data/`` as the recipes expect
it, so a wrong root, file name or field in a recipe or a reader fails here.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from clicksam.cli import main
from clicksam.training.config import load_config

from .layouts import build_workspace

pytestmark = pytest.mark.slow

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
QUICK = ["--model", "tiny", "--steps", "2", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("recipes"))


def _embed(recipe: Path, capsys) -> str:
    assert main(["embed", "--config", str(recipe), "--model", "tiny"]) == 0
    return capsys.readouterr().out


def _train(recipe: Path, capsys, *extra: str, batch: int = 2) -> Path:
    """Train 2 steps; check the run's files; return the method file."""
    assert main(["train", "--config", str(recipe), *QUICK, "--batch-size", str(batch), *extra]) == 0
    printed = capsys.readouterr().out
    assert "done: step 2/2" in printed
    config = load_config(recipe)
    out = Path(config.out_dir)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines][-1] == 2
    saved = json.loads((out / "config.json").read_text())
    assert saved["notes"] == config.notes and saved["model"] == "tiny" and saved["batch_size"] == batch
    recipe_values = json.loads(json.dumps(config.to_dict()))
    assert saved["options"] == recipe_values["options"] and saved["optim"] == recipe_values["optim"]
    assert saved["data"]["datasets"] == recipe_values["data"]["datasets"]
    return out / "method.safetensors"


def _tensors(path: Path) -> dict:
    from clicksam.checkpoint import read_method_file

    return read_method_file(path)[0]


@pytest.mark.parametrize("size", ["vit_b", "vit_l", "vit_h"])
def test_stable_sam_recipe(workspace, monkeypatch, capsys, size):
    monkeypatch.chdir(workspace)
    recipe = RECIPES / f"stable_sam_{size}.json"
    printed = _embed(recipe, capsys)
    assert f"7 images in stores/hqseg44k_{size}" in printed  # one per HQSeg-44K training folder
    method_file = _train(recipe, capsys)
    keys = set(_tensors(method_file))
    assert keys and all(k.startswith("stable_sam.") for k in keys)
    import clicksam

    model = clicksam.build_sam("tiny", checkpoint=[method_file])
    assert getattr(model.stable_sam, "clicksam_trained", False)


def test_focsam_two_stage_recipe(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    stage1, stage2 = RECIPES / "focsam_vit_h_stage1.json", RECIPES / "focsam_vit_h_stage2.json"
    printed = _embed(stage1, capsys)
    assert "6 images in stores/coco_lvis_vit_h" in printed  # 3 COCO panoptic + 3 LVIS images
    assert "'crowd': 1" in printed
    decoder_file = _train(stage1, capsys)
    decoder = _tensors(decoder_file)
    assert decoder and all(k.startswith("mask_decoder.") for k in decoder)
    # stage 2 reads stage 1's file, which its config lists after the (vit_h) SAM file
    assert load_config(stage2).checkpoint[-1] == str(decoder_file)
    refiner_file = _train(stage2, capsys, "--checkpoint", str(decoder_file), batch=1)
    refined = _tensors(refiner_file)
    assert any(k.startswith("focus_refiner.") for k in refined)
    for key, value in decoder.items():  # the refiner's file carries the frozen stage-1 decoder unchanged
        assert (refined[key] == value).all(), key


@pytest.mark.parametrize("size", ["vit_h", "vit_b"])
def test_sam_ref_recipe(workspace, monkeypatch, capsys, size):
    monkeypatch.chdir(workspace)
    recipe = RECIPES / f"sam_ref_{size}.json"
    assert "6 images in stores/coco_lvis_" in _embed(recipe, capsys)
    keys = set(_tensors(_train(recipe, capsys)))
    assert any(k.startswith("sam_ref.") for k in keys) and all(k.startswith("sam_ref.") for k in keys)
