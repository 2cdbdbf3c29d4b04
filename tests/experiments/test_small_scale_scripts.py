"""The small-scale evidence scripts (``experiments/``) run end to end on tiny budgets.

They are not part of the package, but their committed reports are the methods' evidence, so a
change that breaks them must fail here: each script trains a base for a few steps on 12 scenes
(the library's ``Trainer``, cached in a temporary folder), trains its method briefly, evaluates 2
held-out scenes and writes results.json, report.md and its PNG; ``--report-only`` rebuilds the
report from results.json; ``--reuse-trained`` evaluates the kept float16 weights again and gives
the run's per-scene numbers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--base-steps", "6", "--method-steps", "4", "--train-scenes", "12", "--test-scenes", "2", "--batch", "2",
        "--test-family", "77", "--seed", "1"]
SCRIPTS = {
    "stable_sam_small.py": (["--num-prompts", "2"], "stable_sam_small.png", ("sam", "stable-sam")),
    "focsam_small.py": (["--refiner-depth", "2", "--decoder-steps", "3"], "focsam_small.png",
                        ("sam", "decoder", "focsam", "focsam, refiner off")),
    "sam_ref_small.py": (["--mask-loss", "bce", "--lfr-patch", "32", "--patch-dice", "1", "--patch-refined", "0.5"],
                         "sam_ref_small.png",
                         ("sam", "sam-ref", "sam-ref, LFR off")),
}


def _env(tmp_path: Path, cache: str = "cache", **extra: str) -> dict[str, str]:
    return {**os.environ, "CLICKSAM_EXPERIMENTS_CACHE": str(tmp_path / cache),
            "CLICKSAM_EXPERIMENTS_MODELS": str(tmp_path / "models"), "OMP_NUM_THREADS": "1", **extra}


def _per_scene(results: dict) -> dict:
    """Every row's per-scene numbers (click rows: IoU curves; prompt rows: mIoU per type)."""
    return {row: r["per_scene_iou"] if "per_scene_iou" in r else {t: v["per_scene_miou"] for t, v in r.items()}
            for row, r in results.items()}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_runs_end_to_end(script, tmp_path):
    from safetensors import safe_open

    extra, png, methods = SCRIPTS[script]
    (tmp_path / "models").mkdir()
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "experiments" / script), *TINY, *extra, "--keep-weights", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["results"]) == set(methods)
    assert (saved["info"]["seed"], saved["info"]["base_seed"], saved["info"]["test_family"]) == (1, 0, 77)
    assert (out / png).stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "Verdict" in report and saved["info"]["command"] in report and "family 77" in report.replace("\n", " ")
    if script == "sam_ref_small.py":  # the patch-loss options reach the report's loss line
        assert "`--patch-dice 1` · Dice on the patch" in report and "`--patch-refined 0.5`" in report
    runs = sorted(p.name.split("_")[0] for p in (tmp_path / "cache" / "runs").iterdir())
    assert runs[0] == "base-seed0" and len(runs) == len(saved["info"]["parts"])
    for name in saved["info"]["parts"].values():  # every part kept, in float16, with its training record
        with safe_open(str(tmp_path / "models" / f"{name}.safetensors"), framework="pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
        assert json.loads((tmp_path / "models" / f"{name}.json").read_text())["steps"] > 0

    refused = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "already holds a run" in refused.stderr

    (out / "report.md").unlink()
    again = subprocess.run(cmd + ["--report-only"], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "report.md").read_text() == report

    # the kept float16 weights alone (a fresh cache, no cached rows) give the run's per-scene numbers
    reused = tmp_path / "reused"
    again = subprocess.run(cmd + ["--reuse-trained", "--out", str(reused)], cwd=ROOT, capture_output=True, text=True,
                           env=_env(tmp_path, "fresh", CLICKSAM_EXPERIMENTS_NO_ROW_CACHE="1"), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not (tmp_path / "fresh" / "runs").exists(), "--reuse-trained must not train"
    assert _per_scene(json.loads((reused / "results.json").read_text())["results"]) == _per_scene(saved["results"])


@pytest.mark.slow
def test_base_probe_reports_the_three_scores(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "base_probe.py"), *TINY[:2], *TINY[4:6], "--count", "2"]
    done = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    for name in ("gt_box", "point_best_of_3", "point_single"):
        value = float(last.split(f"{name} mIoU ")[1].split(",")[0])
        assert 0.0 <= value <= 1.0
