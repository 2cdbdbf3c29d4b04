"""The family latency benchmark runs end to end on the test configs (a smoke test: it must not rot
before the coordinator reruns it)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_family_latency_script_writes_one_result_file(tmp_path):
    command = [
        sys.executable, str(ROOT / "benchmarks/family_latency.py"), "--models", "tiny", "sam2_tiny", "hq_tiny",
        "--baseline", "tiny", "--repeats", "1", "--click-repeats", "1", "--threads", "1", "--tag", "smoke", "--out-dir", str(tmp_path),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    result = json.loads((tmp_path / "family_latency_smoke.json").read_text())
    assert result["weights"].startswith("random") and result["baseline"] == "tiny"
    assert set(result["encoder"]) == {"tiny", "sam2_tiny", "hq_tiny"}
    assert result["encoder"]["tiny"]["ratio_to_baseline"] == 1.0
    assert set(result["per_click"]) == {"first_click_multimask", "later_click_mask_input"}
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "never overwritten" in again.stderr
