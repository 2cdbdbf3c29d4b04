"""Image-encoder variants measured one fresh process at a time: wall time, CPU time and peak memory.

Shared by ``benchmarks/latency.py`` and ``benchmarks/int8_encoder.py``. The parent writes the model
(weights + config), the preprocessed inputs and the ONNX graphs into a work folder, then runs
``python benchmarks/encoder_bench.py --worker SPEC`` once per variant and round, rotating the order
every round so that machine load drifts over all variants alike. A worker loads its variant, encodes
once to warm up, times ``repeats`` encodings (wall and process CPU time), and reports the peak
resident memory of the last one: the kernel's high-water mark (VmHWM) is reset just before it
(``/proc/self/clear_refs``), so the figure is the encoding's own peak (weights + activations +
runtime arenas), not the process's history. tracemalloc would see none of onnxruntime's memory.

Variants (``VARIANTS``): ``reference`` (segment-anything's ``image_encoder``, same weights),
``torch-fp32`` (``Sam.encode``), ``torch-int8-dynamic`` (``torch.ao`` dynamic int8 ``nn.Linear``),
``onnx-fp32``, ``onnx-int8`` (clicksam's recipe, ``clicksam.onnx.encoder.INT8_RECIPE``) and the
onnxruntime candidates the recipe was chosen from (``onnx-int8-*``).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    runtime: str  # "torch" or "onnx"
    precision: str  # "fp32" or "int8"
    description: str
    recipe: Optional[dict] = None  # onnxruntime dynamic quantisation arguments (quantize_dynamic_file)
    static: bool = False  # onnxruntime static quantisation with calibration images


VARIANTS = {v.name: v for v in [
    Variant("reference", "torch", "fp32", "segment-anything's image_encoder (same weights)"),
    Variant("torch-fp32", "torch", "fp32", "clicksam Sam.encode"),
    Variant("torch-int8-dynamic", "torch", "int8", "torch.ao dynamic quantisation of every nn.Linear (qint8 weights)"),
    Variant("onnx-fp32", "onnx", "fp32", "clicksam ONNX encoder, fp32"),
    Variant("onnx-int8", "onnx", "int8", "clicksam's int8 recipe (onnxruntime dynamic, s8 weights, MatMul, per channel)"),
    Variant("onnx-int8-pertensor", "onnx", "int8", "onnxruntime dynamic, s8 weights, MatMul, per tensor",
            {"weight_type": "int8", "per_channel": False, "op_types": ("MatMul",)}),
    Variant("onnx-int8-u8", "onnx", "int8", "onnxruntime dynamic, u8 weights, MatMul, per tensor",
            {"weight_type": "uint8", "per_channel": False, "op_types": ("MatMul",)}),
    Variant("onnx-int8-conv", "onnx", "int8", "onnxruntime dynamic, s8 weights, MatMul + Conv, per tensor",
            {"weight_type": "int8", "per_channel": False, "op_types": ("MatMul", "Conv")}),
    Variant("onnx-int8-static", "onnx", "int8", "onnxruntime static QDQ (MinMax calibration), u8 activations, s8 weights, MatMul",
            static=True),
]}
PRODUCT_VARIANTS = ("reference", "torch-fp32", "onnx-fp32", "onnx-int8")


# ---------------------------------------------------------------- parent side: preparing the work folder

def save_model(model, config, path: Path) -> Path:
    """The model's ``ModelConfig`` and weights, for workers to rebuild it exactly."""
    torch.save({"config": dataclasses.asdict(config), "state_dict": model.state_dict(), "model_name": model.model_name}, path)
    return path


def load_model(path: Path):
    """(model, config) saved by :func:`save_model`."""
    from clicksam.build import sam_from_config
    from clicksam.registry import ModelConfig

    saved = torch.load(path, map_location="cpu", weights_only=False)
    fields = dict(saved["config"], weights=None)
    fields["encoder_global_attn_indexes"] = tuple(fields["encoder_global_attn_indexes"])
    fields["tags"] = tuple(fields.get("tags", ()))
    config = ModelConfig(**fields)
    model = sam_from_config(config).eval()
    model.load_state_dict(saved["state_dict"])
    model.model_name = saved["model_name"]
    return model, config


def prepare_inputs(model, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple[tuple[int, int], tuple[int, int]]]]:
    """Images (H×W×3 uint8 RGB) as the predictor feeds the encoder: N×3×S×S float32, plus each
    image's (original_size, input_size)."""
    from clicksam.transforms import ResizeLongestSide

    transform = ResizeLongestSide(model.image_size)
    batch, sizes = [], []
    for image in images:
        resized = transform.apply_image(image)
        tensor = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float()
        with torch.no_grad():
            batch.append(model.preprocess(tensor).numpy())
        sizes.append((tuple(image.shape[:2]), tuple(resized.shape[:2])))
    return np.concatenate(batch), sizes


def onnx_graphs(model, names: Sequence[str], calibration: Optional[np.ndarray], cache_dir: Optional[Path],
                log: Callable[[str], None] = print) -> dict[str, Path]:
    """The ONNX graph of every onnx variant in ``names`` (exported and quantised once, then cached)."""
    from clicksam.cache import encoder_digest
    from clicksam.onnx.encoder import EXPORT_REVISION, export_encoder
    from clicksam.onnx.export import DEFAULT_OPSET
    from clicksam.onnx.graph_cache import GRAPH_FILE, GraphKey, cached_graph
    from clicksam.onnx.quantize import quantize_dynamic_file

    graphs: dict[str, Path] = {}
    wanted = [n for n in names if VARIANTS[n].runtime == "onnx"]
    if not wanted:
        return graphs
    fp32 = export_encoder(model, "fp32", cache_dir=cache_dir, log=log)
    for name in wanted:
        variant = VARIANTS[name]
        if name in ("onnx-fp32", "onnx-int8"):
            graphs[name] = fp32 if name == "onnx-fp32" else export_encoder(model, "int8", cache_dir=cache_dir, log=log)
            continue
        if variant.static and calibration is None:
            raise ValueError(f"{name} needs calibration images")
        options = {"revision": EXPORT_REVISION, "recipe": json.dumps(variant.recipe, sort_keys=True)}
        if variant.static:
            options["calibration"] = hashlib.sha256(np.ascontiguousarray(calibration).tobytes()).hexdigest()[:16]
        key = GraphKey.make(encoder_digest(model), f"encoder-candidate-{name}", DEFAULT_OPSET, **options)

        def build(folder: Path, variant: Variant = variant) -> None:
            if variant.static:
                quantize_static_file(fp32, folder / GRAPH_FILE, calibration)
            else:
                quantize_dynamic_file(fp32, folder / GRAPH_FILE, **variant.recipe)

        graphs[name] = cached_graph(key, build, cache_dir, log)
    return graphs


def quantize_static_file(source: Path, target: Path, calibration: np.ndarray) -> None:
    """onnxruntime static QDQ quantisation of MatMul weights and inputs, ranges from ``calibration``
    (N×3×S×S preprocessed images, MinMax)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from clicksam.onnx.quantize import quiet_root_logger

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"image": calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.items, None)

    with quiet_root_logger():
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                        per_channel=False, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        extra_options={"MatMulConstBOnly": True})


# ---------------------------------------------------------------- worker side: one variant in a fresh process

def memory_mb(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process in MB (Linux), NaN elsewhere."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def reset_peak_memory() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def make_runner(spec: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """``encode(image 1×3×S×S float32) -> embedding`` for the spec's variant."""
    variant = VARIANTS[spec["variant"]]
    threads = spec["threads"]
    if variant.runtime == "onnx":
        from clicksam.onnx.encoder import OnnxEncoder

        encoder = OnnxEncoder(spec["graph"], num_threads=threads)
        if spec.get("profile"):
            encoder.session = onnx_profiling_session(spec["graph"], threads, spec["profile"])
        return encoder.run
    model, cfg = load_model(Path(spec["model"]))
    if variant.name == "reference":
        from tests.reference_sam import _install_torchvision_stand_in

        _install_torchvision_stand_in()
        from segment_anything.build_sam import _build_sam

        if cfg.image_size != 1024 or cfg.window_size != 14 or cfg.patch_size != 16:
            raise ValueError("the reference variant needs a model of SAM's frame (1024, patch 16, window 14)")
        ref = _build_sam(cfg.encoder_embed_dim, cfg.encoder_depth, cfg.encoder_num_heads, list(cfg.encoder_global_attn_indexes)).eval()
        ref.load_state_dict(model.state_dict())
        module = ref.image_encoder
    elif variant.name == "torch-int8-dynamic":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notes (torchao migration)
            module = torch.ao.quantization.quantize_dynamic(model.image_encoder, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    else:
        module = model.image_encoder
    del model  # only the encoder stays resident (the reference's own copy for "reference")

    def run(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(image)).numpy()

    return run


def onnx_profiling_session(graph: str, threads: int, prefix: str):
    """A session like ``OnnxEncoder``'s, with onnxruntime's per-node profiler on."""
    import onnxruntime as ort

    from clicksam.onnx.sessions import session_options

    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = prefix
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def onnx_node_group(name: str) -> str:
    """The part of the encoder an onnxruntime node belongs to, from its scoped name: a block's own
    modules ("blocks.N": norms, qkv, projection, MLP, and windowed attention), the patch embedding,
    the neck, or the chunked global attention (QK, relative-position bias, softmax, AV), which the
    export module computes itself and so carries no block scope."""
    parts = name.split("/")
    for part in parts:
        if part.startswith("blocks."):
            return part
    if "patch_embed" in name:
        return "patch embed"
    if "neck" in name:
        return "neck"
    return "global attention core (chunked QK, bias, softmax, AV)"


def summarize_onnx_profile(trace: Path, runs: int, top: int = 15) -> dict[str, Any]:
    """Per-run seconds by operator type, by encoder block and for the slowest nodes, from an
    onnxruntime profile of ``runs`` runs (the warm-up included, so divided by ``runs``)."""
    by_op: dict[str, float] = {}
    by_block: dict[str, float] = {}
    nodes: dict[str, float] = {}
    for event in json.loads(Path(trace).read_text()):
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        seconds = event["dur"] / 1e6 / runs
        op = event["args"]["op_name"]
        name = event["name"][: -len("_kernel_time")]
        by_op[op] = by_op.get(op, 0.0) + seconds
        block = onnx_node_group(name)
        by_block[block] = by_block.get(block, 0.0) + seconds
        nodes[f"{name} ({op})"] = nodes.get(f"{name} ({op})", 0.0) + seconds

    def ordered(table: dict[str, float], limit: int | None = None) -> dict[str, float]:
        return dict(sorted(table.items(), key=lambda item: -item[1])[:limit])

    return {"total_s": sum(by_op.values()), "by_op_type_s": ordered(by_op), "by_block_s": ordered(by_block),
            "slowest_nodes_s": ordered(nodes, top)}


def summarize_torch_profile(profiler, top: int = 15) -> dict[str, Any]:
    """Self CPU seconds by operator from a ``torch.profiler`` run."""
    rows = sorted(profiler.key_averages(), key=lambda e: -e.self_cpu_time_total)
    by_op = {e.key: e.self_cpu_time_total / 1e6 for e in rows[:top]}
    return {"total_s": sum(e.self_cpu_time_total for e in rows) / 1e6, "by_op_type_s": by_op}


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(spec["threads"])
    start = time.perf_counter()
    run = make_runner(spec)
    inputs = np.load(spec["input"], mmap_mode="r")
    image = np.ascontiguousarray(inputs[spec.get("input_index", 0)][None])
    load_s = time.perf_counter() - start
    for _ in range(spec.get("warmup", 1)):
        run(image)
    walls, cpus, rss_before, tracked = [], [], float("nan"), False
    repeats = max(1, int(spec.get("repeats", 1)))
    for i in range(repeats):
        if i == repeats - 1:
            rss_before = memory_mb("VmRSS")
            tracked = reset_peak_memory()
        wall, cpu = time.perf_counter(), time.process_time()
        output = run(image)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    peak = memory_mb("VmHWM") if tracked else float("nan")
    result = {"variant": spec["variant"], "wall_s": walls, "cpu_s": cpus, "load_s": load_s,
              "rss_before_mb": rss_before, "peak_rss_mb": peak, "threads": spec["threads"]}
    if spec.get("embed_out"):  # embeddings of every input, for the quality figures
        embeddings = np.concatenate([run(np.ascontiguousarray(inputs[i][None])) for i in range(len(inputs))])
        np.save(spec["embed_out"], embeddings)
    if spec.get("profile"):
        result["profile"] = profile_runs(spec, run, image)
    del output
    return result


def profile_runs(spec: dict[str, Any], run: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> dict[str, Any]:
    """Where one encoding's time goes: onnxruntime's node profiler (its session already records
    every run) or ``torch.profiler`` around one more encoding."""
    if VARIANTS[spec["variant"]].runtime == "onnx":
        session = run.__self__.session
        trace = session.end_profiling()
        runs = spec.get("warmup", 1) + max(1, int(spec.get("repeats", 1)))
        summary = summarize_onnx_profile(Path(trace), runs)
        Path(trace).unlink()
        return summary
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        run(image)
    return summarize_torch_profile(profiler)


def run_worker(spec: dict[str, Any], timeout_s: float = 3600) -> dict[str, Any]:
    """Run :func:`worker` in a fresh Python process; returns its result dict."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                          timeout=timeout_s, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"worker for {spec['variant']} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(specs: dict[str, dict[str, Any]], rounds: int, log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Every spec ``rounds`` times in fresh processes, the order rotated each round.

    Returns per variant: the wall and CPU times of every timed encoding, their medians, the
    median peak RSS and load time."""
    names = list(specs)
    raw: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            result = run_worker(specs[name])
            raw[name].append(result)
            log(f"round {r + 1}/{rounds} {name}: {statistics.median(result['wall_s']):.2f} s wall, "
                f"{statistics.median(result['cpu_s']):.2f} s CPU, peak {result['peak_rss_mb']:.0f} MB "
                f"(load average {os.getloadavg()[0]:.1f})")
    summary = {}
    for name, results in raw.items():
        walls = [w for res in results for w in res["wall_s"]]
        cpus = [c for res in results for c in res["cpu_s"]]
        summary[name] = {
            "wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
            "peak_rss_mb": statistics.median(res["peak_rss_mb"] for res in results),
            "rss_before_mb": statistics.median(res["rss_before_mb"] for res in results),
            "load_s": statistics.median(res["load_s"] for res in results),
            "wall_runs": walls, "cpu_runs": cpus,
        }
    return summary


def sqnr_db(ours: np.ndarray, ref: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio of ``ours`` against ``ref`` in dB (∞ when equal)."""
    noise = float(np.sum((ours.astype(np.float64) - ref) ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / noise))


def cosine(ours: np.ndarray, ref: np.ndarray) -> float:
    a, b = ours.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def run_tag() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="internal: one encoder measurement (see the module docstring)")
    parser.add_argument("--worker", required=True, help="the JSON spec")
    print(json.dumps(worker(json.loads(parser.parse_args().worker))))
