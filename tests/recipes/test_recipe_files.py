"""The recipe files say what the papers say, their size variants differ only in the size, and the
cost figures in their notes and in docs/training.md are those of the committed benchmark result."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from clicksam.training.config import load_config

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
SIZE_FIELDS = {"model", "checkpoint", "notes", "out_dir"}


def _load(name: str):
    return load_config(RECIPES / name)


def test_every_recipe_loads_and_names_its_store():
    names = sorted(p.name for p in RECIPES.glob("*.json"))
    assert names == ["focsam_vit_h_stage1.json", "focsam_vit_h_stage2.json", "sam_ref_vit_b.json", "sam_ref_vit_h.json",
                     "stable_sam_vit_b.json", "stable_sam_vit_h.json", "stable_sam_vit_l.json"]
    for name in names:
        config = _load(name)
        assert config.data.store and config.notes and config.checkpoint[0].startswith("~/.cache/clicksam/sam_")


def test_focsam_stages_follow_the_official_configs():
    for name, method, steps in (("focsam_vit_h_stage1.json", "decoder", 320_000), ("focsam_vit_h_stage2.json", "focsam", 160_000)):
        c = _load(name)
        assert (c.method, c.model, c.steps, c.batch_size) == (method, "vit_h", steps, 16)
        assert (c.optim.lr, c.optim.weight_decay, c.optim.warmup_steps, c.optim.schedule, c.optim.min_lr_ratio) == \
            (1e-4, 0.05, 1500, "linear", 0.0)
        assert [d["type"] for d in c.data.datasets] == ["coco-panoptic", "lvis"] and c.data.image_size == 1024
    assert _load("focsam_vit_h_stage1.json").options["iou_weight"] == 0.0  # NFL + point loss only
    stage2 = _load("focsam_vit_h_stage2.json")
    assert stage2.checkpoint[-1] == _load("focsam_vit_h_stage1.json").out_dir + "/method.safetensors"
    assert stage2.options["expand_max"] == 1.4 and stage2.data.store == _load("focsam_vit_h_stage1.json").data.store


def test_stable_sam_is_one_epoch_of_hqseg44k():
    c = _load("stable_sam_vit_l.json")
    assert c.method == "stable-sam" and [d["type"] for d in c.data.datasets] == ["hqseg"]
    assert c.steps == math.ceil(44_320 / c.batch_size)
    assert c.options["box_noise"] == 0.5 and (c.options["min_points"], c.options["max_points"]) == (1, 5)


def test_sam_ref_uses_the_papers_losses_on_a_frozen_sam():
    c = _load("sam_ref_vit_h.json")
    assert c.method == "sam-ref" and c.options["mask_loss"] == "nfl"
    assert c.options["patch_dice"] == 0.0 and c.options["patch_refined"] == 0.0
    assert c.data.store == _load("focsam_vit_h_stage1.json").data.store  # one ViT-H store for both


@pytest.mark.parametrize("family,sizes", [("stable_sam", ("vit_b", "vit_l", "vit_h")), ("sam_ref", ("vit_b", "vit_h"))])
def test_size_variants_differ_only_in_the_size(family, sizes):
    raw = {s: json.loads((RECIPES / f"{family}_{s}.json").read_text()) for s in sizes}
    first = raw[sizes[0]]
    for size, values in raw.items():
        assert values["model"] == size and values["out_dir"] == f"runs/{family}_{size}"
        assert size in values["data"]["store"] and f"sam_{size}_" in values["checkpoint"][0]
        strip = lambda v: {k: (dict(v[k], store=None) if k == "data" else v[k]) for k in v if k not in SIZE_FIELDS}  # noqa: E731
        assert strip(values) == strip(first), f"{family}_{size} differs from {family}_{sizes[0]} beyond the size"


def _cost_module():
    spec = importlib.util.spec_from_file_location("recipe_cost", ROOT / "benchmarks" / "recipe_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cost_figures_match_the_committed_result():
    results = sorted((ROOT / "benchmarks" / "results").glob("recipe_cost_*.json"))
    assert results, "no benchmarks/results/recipe_cost_*.json: run benchmarks/recipe_cost.py and --apply it"
    latest = results[-1]
    result = json.loads(latest.read_text())
    assert result["what"].startswith("ESTIMATES")
    cost = _cost_module()
    source = latest.relative_to(ROOT).as_posix()
    rows = {r["recipe"]: r for r in result["recipes"]}
    assert set(rows) == {p.name for p in RECIPES.glob("*.json")}
    for name, row in rows.items():
        assert cost.cost_note(row, source) in _load(name).notes, f"{name}: run recipe_cost.py --apply {source}"
    assert cost.table_block(result, source) in (ROOT / "docs" / "training.md").read_text()
