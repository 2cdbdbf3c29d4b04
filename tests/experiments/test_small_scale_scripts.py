"""The small-scale evidence scripts (``experiments/``) run end to end on tiny budgets.

They are not part of the package, but their committed reports are the methods' evidence, so a
change that breaks them must fail here: each script trains a base for a few seconds on 12 scenes
(cached in a temporary folder), trains its method briefly, evaluates 2 held-out scenes and writes
results.json, report.md and its PNG; ``--report-only`` rebuilds the report from results.json.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--base-minutes", "0.05", "--method-minutes", "0.05", "--train-scenes", "12", "--test-scenes", "2",
        "--batch", "2"]
SCRIPTS = {
    "stable_sam_small.py": (["--num-prompts", "2"], "stable_sam_small.png", ("sam", "stable-sam")),
    "focsam_small.py": (["--refiner-depth", "2", "--decoder-minutes", "0.05"], "focsam_small.png",
                        ("sam", "decoder", "focsam", "focsam, refiner off")),
    "sam_ref_small.py": (["--mask-loss", "bce", "--lfr-patch", "32", "--patch-dice", "1", "--patch-refined", "0.5"],
                         "sam_ref_small.png",
                         ("sam", "sam-ref", "sam-ref, LFR off")),
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_runs_end_to_end(script, tmp_path):
    extra, png, methods = SCRIPTS[script]
    env = {**os.environ, "CLICKSAM_EXPERIMENTS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "experiments" / script), *TINY, *extra, "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["results"]) == set(methods)
    assert (out / png).stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "Verdict" in report and saved["info"]["command"] in report
    if script == "sam_ref_small.py":  # the patch-loss options reach the report's loss line
        assert "`--patch-dice 1` · Dice on the patch" in report and "`--patch-refined 0.5`" in report
    assert list((tmp_path / "cache").glob("base_*.pt")), "the base should be cached"
    assert (tmp_path / "cache" / f"trained_{script[:-3]}.pt").is_file()

    (out / "report.md").unlink()
    again = subprocess.run(cmd + ["--report-only"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "report.md").read_text() == report

    if script == "focsam_small.py":  # the kept model, evaluated again, gives the run's numbers
        reused = tmp_path / "reused"
        again = subprocess.run(cmd + ["--reuse-trained", "--training-log", "log.txt", "--out", str(reused)], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        redone = json.loads((reused / "results.json").read_text())
        for row in methods:
            assert redone["results"][row]["per_scene_iou"] == saved["results"][row]["per_scene_iou"], row
        assert "[log.txt](log.txt)" in (reused / "report.md").read_text()


@pytest.mark.slow
def test_base_probe_reports_the_three_scores(tmp_path):
    env = {**os.environ, "CLICKSAM_EXPERIMENTS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "experiments" / "base_probe.py"), *TINY[:6], "--count", "2"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    for name in ("gt_box", "point_best_of_3", "point_single"):
        value = float(last.split(f"{name} mIoU ")[1].split(",")[0])
        assert 0.0 <= value <= 1.0
