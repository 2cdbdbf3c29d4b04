"""Where SAM-REF's per-click time goes on onnxruntime: each of its graphs, per operator type, beside
torch's GFR and LFR on the same random weights and inputs (interleaved rounds, one process).

    python benchmarks/sam_ref_onnx_profile.py --threads 2 --runs 5 --tag r1

SAM-REF's refiners depend only on its config (the default: the 1024 frame, embedding width 256), not on
the ViT, so a tiny SAM carries them. Rows: ``global`` (the GFR graph on the cached context), ``patch-<w>x<h>``
(the LFR graph for a detail window of that size, numpy's crop and taps included), ``step-onnx`` /
``step-torch`` (one whole refinement step on the cached context, window from the rule). Per graph, the
kernel time per operator type from onnxruntime's profiler (its own runs after the timed ones).
Writes ``benchmarks/results/sam_ref_onnx_profile_<tag>.json`` (never overwritten) with the load average.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WINDOWS = [(0, 0, 1024, 683), (300, 150, 600, 450), (400, 300, 500, 400)]  # (x0, y0, x1, y1)


def op_profile(path: Path, feed: dict, threads: int, runs: int) -> dict[str, float]:
    """Milliseconds per run of each operator type (onnxruntime's profiler)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "profile")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    total: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            total[event["args"]["op_name"]] += event["dur"]
    return {op: us / runs / 1000 for op, us in total.most_common()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tag", required=True)
    args = parser.parse_args()
    out = RESULTS / f"sam_ref_onnx_profile_{args.tag}.json"
    if out.exists():
        raise SystemExit(f"{out} exists; results are never overwritten, pick another --tag")
    torch.set_num_threads(args.threads)
    import clicksam
    from clicksam.methods.sam_ref import onnx as graphs

    load_start = os.getloadavg()
    torch.manual_seed(0)
    model = clicksam.build_sam("tiny", methods=["sam-ref"])
    sam_ref = model.sam_ref.eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in sam_ref.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    cache = Path(tempfile.mkdtemp())
    paths = graphs.cached_graphs(sam_ref, cache_dir=cache, log=None)
    onnx_ref = graphs.OnnxSamRef(sam_ref, paths, args.threads)
    c = sam_ref.config
    image, embedding = torch.randn(1, 3, 1024, 1024, generator=g), torch.randn(1, 256, 64, 64, generator=g)
    low = torch.full((1, 1, 256, 256), -4.0)
    low[..., 60:140, 80:200] = 4.0
    points, labels, size = torch.tensor([[[512.0, 400.0]]]), torch.tensor([[1]]), (683, 1024)
    context = onnx_ref.global_context(image, embedding)
    with torch.no_grad():
        torch_context = sam_ref.global_context(image, embedding)
    disks = graphs.click_disks(points, labels, c.image_size, c.click_radius)
    global_feed = {**context, "disks": disks, "low_res_logits": low.numpy()}
    _, glob, _ = onnx_ref.sessions["global"].run(list(graphs.GLOBAL_OUTPUTS), global_feed)
    image_np, emb_np = image.numpy(), embedding.numpy()

    def patch_fn(window):
        def run():
            feed = {"base": glob, "image_embeddings": emb_np,
                    **graphs.patch_feed(window, image_np, disks, glob, c, emb_np.shape[-1])}
            return onnx_ref.sessions["patch"].run(list(graphs.PATCH_OUTPUTS), feed)
        return run

    fns = {"global": lambda: onnx_ref.sessions["global"].run(list(graphs.GLOBAL_OUTPUTS), global_feed)}
    for w in WINDOWS:
        fns[f"patch-{w[2] - w[0]}x{w[3] - w[1]}"] = patch_fn(w)
    fns["step-onnx"] = lambda: onnx_ref(image, embedding, low, points, labels, size, context=context)

    def torch_step():
        with torch.no_grad():
            return sam_ref(image, embedding, low, points, labels, size, context=torch_context)

    fns["step-torch"] = torch_step
    times: dict[str, list[float]] = {n: [] for n in fns}
    names = list(fns)
    for name in names:
        fns[name]()
    for i in range(args.runs):
        for name in names[i % len(names):] + names[: i % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    rows = {n: {"median_s": statistics.median(t), "min_s": min(t), "runs": len(t)} for n, t in times.items()}
    timings: dict[str, float] = {}
    with torch.no_grad():
        sam_ref(image, embedding, low, points, labels, size, context=torch_context, timings=timings)
    step_window = onnx_ref(image, embedding, low, points, labels, size, context=context).windows[0]
    big = WINDOWS[0]
    profiles = {
        "global": op_profile(paths["global"], global_feed, args.threads, args.runs),
        f"patch-{big[2] - big[0]}x{big[3] - big[1]}": op_profile(
            paths["patch"], {"base": glob, "image_embeddings": emb_np,
                             **graphs.patch_feed(big, image_np, disks, glob, c, emb_np.shape[-1])},
            args.threads, args.runs),
    }
    for name, row in rows.items():
        print(f"{name:20s} {row['median_s'] * 1000:7.1f} ms", flush=True)
    for name, ops in profiles.items():
        print(name, ", ".join(f"{op} {ms:.1f}" for op, ms in list(ops.items())[:6]))
    results = {
        "config": c.to_dict(), "weights": "random non-trivial (benchmark only)", "threads": args.threads,
        "runs": args.runs, "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
        "command": "python " + " ".join(sys.argv), "load_average_start": load_start,
        "step_window": list(step_window), "rows": rows, "torch_step_timings_s": timings,
        "op_ms_per_run": profiles, "load_average_end": os.getloadavg(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
