"""``experiments/gpu_scale.py`` (the confirmation plan at a larger scale, for one GPU) runs end to
end at its tiny size on the CPU: every job of the plan (base, stage 1, each method for two seeds,
the combinations), then ``report``'s verdicts, the same when written twice. So the GPU script, the
driver and the verdicts cannot rot while no GPU is lent."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_plan_runs_at_its_tiny_size(tmp_path):
    (tmp_path / "models").mkdir()
    env = {**os.environ, "CLICKSAM_EXPERIMENTS_CACHE": str(tmp_path / "cache"),
           "CLICKSAM_EXPERIMENTS_MODELS": str(tmp_path / "models"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "experiments/gpu_scale.py", "run", "--device", "cpu", "--tiny", "--results",
           str(tmp_path / "results")]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    logs = tmp_path / "cache" / "gpu_logs"
    assert done.returncode == 0, done.stdout[-2000:] + "".join(p.read_text()[-1500:] for p in logs.glob("*.log"))
    assert "plan finished; not done: none" in done.stdout
    for script in ("stable_sam_small", "focsam_small", "sam_ref_small", "combinations"):
        for seed in (0, 1):
            saved = json.loads((tmp_path / "results" / script / "gpu" / f"seed{seed}" / "results.json").read_text())
            assert (saved["info"]["seed"], saved["info"]["test_family"]) == (seed, 4000)
            assert saved["args"]["patch"] == 8 and saved["args"]["device"] == "cpu"
    assert not (tmp_path / "results" / "gpu").exists()  # the driver runs the jobs; `report` gives the verdicts

    reports = []
    for _ in range(2):  # the verdicts come from the runs' results.json alone: a second report is the same
        made = subprocess.run(cmd[:2] + ["report"] + cmd[3:], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        assert made.returncode == 0, made.stderr[-2000:]
        reports.append((tmp_path / "results" / "gpu" / "report.md").read_text())
    report = reports[0]
    assert reports[1] == report and report in made.stdout
    assert report.startswith("# Plan `gpu`: the pre-registered verdicts")
    assert report.count("**Verdict:") == 3 and "Incomplete" not in report and "| stable-sam+focsam+sam-ref |" in report
    verdicts = json.loads((tmp_path / "results" / "gpu" / "verdicts.json").read_text())
    assert verdicts["focsam_small"]["seeds"] == [0, 1]
