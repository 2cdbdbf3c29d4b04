"""The pre-registered verdict rules of ``experiments/confirm.py`` on hand-made results, and the
combinations' additivity (``experiments/combinations.py``)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from experiments import combinations, confirm


def test_the_rule_needs_two_standard_errors_and_every_seed_positive():
    held = confirm._rule([0.01, 0.02, 0.015])  # mean 0.015, SE 0.0029
    assert held["holds"] and held["mean"] == pytest.approx(0.015) and held["se"] == pytest.approx(0.005 / math.sqrt(3))
    assert not confirm._rule([0.03, -0.001, 0.03])["holds"]  # a seed below zero
    assert not confirm._rule([0.001, 0.02, 0.04])["holds"]  # mean 0.0203 < 2 SE 0.0225


def _click_row(per_scene: np.ndarray, noc90: float = 18.0, biou: float = 0.4) -> dict:
    return {"per_scene_iou": per_scene.tolist(), "noc": {"90": noc90}, "boundary_iou_1to5": biou}


def test_focsam_verdict_separates_the_refiner_from_stage_1():
    rng = np.random.default_rng(0)
    runs = []
    for seed in range(3):
        base = rng.uniform(0.3, 0.7, (50, 20))
        off = base + 0.02  # stage 1's share
        focsam = off + np.r_[0.0, [0.0] * 19] + 0.001 * rng.standard_normal((50, 20))  # no refiner gain
        runs.append({"results": {"sam": _click_row(base), "decoder": _click_row(base + 0.01),
                                 "focsam, refiner off": _click_row(off), "focsam": _click_row(focsam)}})
    verdict = confirm.focsam_verdict(runs)
    assert verdict["across_seeds"]["vs base, clicks 1-20"]["holds"]
    assert verdict["verdict"] in ("stage 1 only", "confirmed")
    for run in runs:  # a real refiner gain after the refocus
        scenes = np.asarray(run["results"]["focsam"]["per_scene_iou"])
        scenes[:, 1:] += 0.01
        run["results"]["focsam"]["per_scene_iou"] = scenes.tolist()
    assert confirm.focsam_verdict(runs)["verdict"] == "confirmed"


def test_sam_ref_verdict_needs_the_boundary_and_noc_directions():
    rng = np.random.default_rng(1)
    runs = []
    for _ in range(3):
        base = rng.uniform(0.3, 0.7, (40, 20))
        runs.append({"results": {"sam": _click_row(base, 18.0, 0.40), "sam-ref": _click_row(base + 0.01, 17.5, 0.41)}})
    assert confirm.sam_ref_verdict(runs)["confirmed"]
    for run in runs:
        run["results"]["sam-ref"]["noc"]["90"] = 18.5  # NoC@90 rises: the session-5 rule fails
    assert not confirm.sam_ref_verdict(runs)["confirmed"]


def test_stable_sam_verdict_keeps_the_gt_box():
    rng = np.random.default_rng(2)
    runs = []
    for _ in range(3):
        per = {t: rng.uniform(0.3, 0.6, 30) for t in ("noisy_box", "point1", "point3", "gt_box")}
        up = {t: v + (0.02 if t != "gt_box" else 0.002 * rng.standard_normal(30)) for t, v in per.items()}
        runs.append({"results": {"sam": {t: {"per_scene_miou": v.tolist()} for t, v in per.items()},
                                 "stable-sam": {t: {"per_scene_miou": v.tolist()} for t, v in up.items()}}})
    verdict = confirm.stable_sam_verdict(runs)
    assert verdict["confirmed"] and verdict["gt_box_kept"]


def test_additivity_of_parts_that_add_exactly():
    """Parts whose per-scene gains add exactly give a zero interaction; the best part is the one
    with the larger gain."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0.3, 0.7, (30, 20))
    stage1 = base + 0.01
    gains = {"stable-sam": 0.002, "sam-ref": 0.01, "stable-sam @ stage 1": 0.001, "focsam": 0.02,
             "sam-ref @ stage 1": 0.005}
    rows = {"sam": base, "decoder": stage1}
    for name, g in gains.items():
        rows[name] = (stage1 if "@" in name or name == "focsam" else base) + g + 0.001 * rng.standard_normal((30, 20))
    for combo, (ref, members) in combinations.COMBINATIONS.items():
        rows[combo] = rows[ref] + sum(rows[m] - rows[ref] for m in members)
    found = combinations.additivity({name: {"per_scene_iou": v.tolist()} for name, v in rows.items()})
    for combo, a in found.items():
        assert abs(a["interaction"]["mean"]) < 1e-12 and a["interaction"]["se"] < 1e-12, combo
        assert a["gain"]["mean"] == pytest.approx(sum(a["parts"][p]["mean"] for p in a["parts"]), abs=1e-12)
    assert found["stable-sam+sam-ref"]["best_part"] == "sam-ref"
    assert found["stable-sam+focsam+sam-ref"]["best_part"] == "focsam"


def test_the_confirmation_plan_is_the_pre_registered_one():
    """The commands the driver runs are the ones SMALL_SCALE.md lists (family 3000, 200 scenes,
    seeds 0-2, the reduced step budgets)."""
    text = (confirm.RESULTS / "SMALL_SCALE.md").read_text()
    jobs = confirm.plan()
    assert [j.name for j in jobs][:2] == ["base", "stage1"] and len(jobs) == 2 + 4 * 3
    for job in jobs:
        args = job.args.replace(confirm.CONFIRM.common, "COMMON").replace(" --tag confirm", "")
        shown = f"`experiments/{job.script} {args}".replace(f"--seed {job.name[-1]}", "--seed K")
        if job.out:
            shown += f" --out {job.out[:-1]}K`"
        assert shown.split(" --out")[0].rstrip("`") in text, shown
    assert "--test-family 3000\n--test-scenes 200" in text or "--test-family 3000 --test-scenes 200" in text


def _save(results: Path, script: str, tag: str, seed: int, run: dict) -> None:
    folder = results / script / tag / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(run))


def test_a_partial_plan_reports_incomplete_with_the_seeds_it_has(tmp_path):
    """Every seed of SAM-REF, two of three of FocSAM, nothing else: SAM-REF gets its verdict, the
    others say which seeds finished and give no verdict (in report.md and verdicts.json); a plan
    of one seed never gives a verdict."""
    scale = dataclasses.replace(confirm.CONFIRM, tag="partial", results=tmp_path)
    rng = np.random.default_rng(4)
    for seed in scale.seeds:
        base = rng.uniform(0.3, 0.7, (40, 20))
        _save(tmp_path, "sam_ref_small", scale.tag, seed,
              {"results": {"sam": _click_row(base, 18.0, 0.40), "sam-ref": _click_row(base + 0.01, 17.5, 0.41)}})
        if seed < 2:
            _save(tmp_path, "focsam_small", scale.tag, seed,
                  {"results": {row: _click_row(base + 0.01 * k) for k, row in
                               enumerate(("sam", "decoder", "focsam, refiner off", "focsam"))}})
    found = confirm.verdicts(scale)
    assert found["sam_ref_small"]["confirmed"] and found["sam_ref_small"]["seeds"] == [0, 1, 2]
    for script, have in (("focsam_small", [0, 1]), ("stable_sam_small", []), ("combinations", [])):
        assert found[script] == {"seeds": have, "verdict": "incomplete"}, script
    report = (confirm.write_report(found, scale) / "report.md").read_text()
    assert report.startswith("# Plan `partial`: the pre-registered verdicts")
    assert report.count("**Verdict:") == 1 and "**Verdict: confirmed.**" in report.split("## SAM-REF")[1]
    assert "Incomplete: seeds [0, 1] finished." in report.split("## FocSAM")[1].split("## SAM-REF")[0]
    assert report.count("Incomplete: seeds [] finished.") == 2
    assert json.loads((tmp_path / "partial" / "verdicts.json").read_text()) == json.loads(json.dumps(found))

    one_seed = dataclasses.replace(scale, seeds=(0,))
    assert confirm.verdicts(one_seed)["sam_ref_small"] == {"seeds": [0], "verdict": "incomplete"}
