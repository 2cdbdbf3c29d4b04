"""The encoder benchmarks (``benchmarks/latency.py``, ``benchmarks/int8_encoder.py``) run end to end
on the tiny model: their committed JSON and PNG files are the evidence for issue 17's encoder goal,
so a change that breaks them must fail here. One round, few variants, 2 clicks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")


def run_script(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_worker_measures_time_memory_and_embeddings(tmp_path, tiny_model):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np

    import encoder_bench as eb
    from clicksam.registry import get_config

    model_file = eb.save_model(tiny_model, get_config("tiny"), tmp_path / "model.pt")
    stack, sizes = eb.prepare_inputs(tiny_model, [np.full((40, 60, 3), 128, np.uint8)])
    assert stack.shape == (1, 3, 1024, 1024) and sizes == [((40, 60), (683, 1024))]
    np.save(tmp_path / "input.npy", stack)
    graphs = eb.onnx_graphs(tiny_model, ["onnx-int8"], None, tmp_path / "cache", log=lambda m: None)
    results = {}
    for variant in ("torch-fp32", "onnx-int8"):
        spec = {"variant": variant, "threads": 1, "model": str(model_file), "graph": str(graphs.get(variant, "")),
                "input": str(tmp_path / "input.npy"), "embed_out": str(tmp_path / f"{variant}.npy")}
        results[variant] = eb.run_worker(spec)
        assert results[variant]["wall_s"][0] > 0 and results[variant]["cpu_s"][0] > 0
        assert results[variant]["peak_rss_mb"] >= results[variant]["rss_before_mb"] > 50
    ours, ref = np.load(tmp_path / "onnx-int8.npy"), np.load(tmp_path / "torch-fp32.npy")
    assert ref.shape == (1, 256, 64, 64) and 20 < eb.sqnr_db(ours, ref) < 80 and eb.cosine(ours, ref) > 0.99


@pytest.mark.slow
def test_int8_benchmark_runs(tmp_path, shared_dir):
    run_script(["benchmarks/int8_encoder.py", "--model", "tiny", "--variants", "torch-fp32", "onnx-int8", "onnx-int8-u8",
                "--rounds", "1", "--threads", "1", "--photos", "1", "--masks", "--clicks", "2", "--tag", "t",
                "--out-dir", str(tmp_path), "--cache-dir", str(tmp_path / "cache")], tmp_path)
    result = json.loads((tmp_path / "int8_encoder_tiny_t.json").read_text())
    assert set(result["speed"]) == {"torch-fp32", "onnx-int8", "onnx-int8-u8"}
    assert len(result["photos"]) == 3 and result["quality"]["photos"]["onnx-int8"]["cosine_mean"] > 0.99
    masks = result["masks"]["onnx-int8"]
    assert masks["scenes"] == 3 and len(masks["agreement_curve"]) == 2 and 0 <= masks["agreement_miou_final_click"] <= 1
    assert (tmp_path / "int8_encoder_tiny_t.png").stat().st_size > 10_000
    again = subprocess.run([sys.executable, "benchmarks/int8_encoder.py", "--model", "tiny", "--tag", "t", "--out-dir", str(tmp_path)],
                           cwd=ROOT, capture_output=True, text=True)
    assert again.returncode != 0 and "never overwritten" in again.stderr


@pytest.mark.slow
def test_latency_benchmark_runs(tmp_path):
    done = run_script(["benchmarks/latency.py", "--model", "tiny", "--rounds", "1", "--threads", "1", "--click-repeats", "2",
                       "--profile", "--tag", "t", "--out-dir", str(tmp_path), "--cache-dir", str(tmp_path / "cache")], tmp_path)
    result = json.loads((tmp_path / "latency_tiny_t.json").read_text())
    assert set(result["encoder"]) == {"reference", "torch-fp32", "onnx-fp32", "onnx-int8"}
    int8 = result["encoder"]["onnx-int8"]
    assert int8["runtime"] == "onnx" and int8["precision"] == "int8" and int8["peak_rss_mb"] > 0
    assert int8["profile"]["by_op_type_s"] and result["encoder"]["reference"]["profile"]["by_op_type_s"]
    assert result["encoder"]["onnx-fp32"]["photo_sqnr_db_vs_torch_fp32"] > 80
    assert "goal (issue 17)" in result["goal"] and "goal (issue 17)" in done.stdout
    assert set(result["per_click_s"]) == {"first_click_multimask", "later_click_mask_input"}
    assert (tmp_path / "latency_tiny_t.png").is_file()
