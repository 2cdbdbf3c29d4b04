"""Per-click decoder latency: the exported ONNX decoder on onnxruntime against the torch model, on
the same weights and embedding in the same run (median of repeats, run in rotation so that every
variant sees the same machine load).

    python benchmarks/onnx_latency.py --repeats 30 --out benchmarks/results/onnx_latency.json

Per click = prompt encoder + mask decoder + upscaling to the image size + threshold, through
``SamPredictor.predict`` (torch) and ``OnnxDecoder.predict`` (onnxruntime), for a first click
(multimask) and a later click (three clicks and the previous low-res logits, single mask).
The decoder is the same network for every SAM size (prompt dim 256), so the default ``tiny`` model
(random weights, no checkpoint needed) measures what ``vit_b``/``vit_l``/``vit_h`` would.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def rotated_medians(functions: dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> dict[str, list[float]]:
    """Run each function ``repeats`` times, rotating the order every round; returns the times."""
    for _ in range(warmup):
        for fn in functions.values():
            fn()
    names = list(functions)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            functions[name]()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="registry name (default tiny: SAM's full decoder, random weights)")
    parser.add_argument("--checkpoint", type=Path, help="optional weights for --model")
    parser.add_argument("--image-size", type=int, nargs=2, default=(400, 600), metavar=("H", "W"),
                        help="original image size the masks are upscaled to (default 400 600, the demo's coffee.jpg)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch and onnxruntime threads (default: all cores)")
    parser.add_argument("--no-quantized", action="store_true", help="skip the uint8-quantized ONNX variant")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1 or min(args.image_size) < 1:
        parser.error("--repeats, --threads and --image-size must be positive")
    torch.set_num_threads(args.threads)

    import clicksam
    from clicksam.io.atomic import atomic_write_json
    from clicksam.onnx import OnnxDecoder, export_decoder

    torch.manual_seed(0)
    # no checkpoint: random weights on purpose (the decoder speed does not depend on the weights)
    model = clicksam.build_sam(args.model, checkpoint=args.checkpoint, random_weights=args.checkpoint is None).eval()
    predictor = clicksam.SamPredictor(model)
    height, width = args.image_size
    embedding = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(1))
    predictor.set_image_embedding(embedding, (height, width))

    decoders: dict[str, OnnxDecoder] = {}
    with tempfile.TemporaryDirectory(prefix="clicksam-onnx-bench-") as tmp:
        start = time.perf_counter()
        float_path = export_decoder(model, Path(tmp) / "decoder.onnx")
        export_s = time.perf_counter() - start
        decoders["onnxruntime"] = OnnxDecoder(float_path, num_threads=args.threads)
        if not args.no_quantized:
            quant_path = export_decoder(model, Path(tmp) / "decoder_quant.onnx", quantize=True)
            decoders["onnxruntime_uint8"] = OnnxDecoder(quant_path, num_threads=args.threads)
        for decoder in decoders.values():
            decoder.set_image_embedding(embedding, (height, width))

    x0, y0 = width * 0.48, height * 0.35
    first = dict(point_coords=np.array([[x0, y0]]), point_labels=np.array([1]), multimask_output=True)
    _, scores, low_res = predictor.predict(**first)
    later = dict(
        point_coords=np.array([[x0, y0], [width * 0.27, height * 0.8], [width * 0.6, height * 0.5]]),
        point_labels=np.array([1, 0, 1]),
        mask_input=low_res[int(np.argmax(scores))][None],
        multimask_output=False,
    )
    results: dict = {
        "model": args.model, "image_size": [height, width], "threads": args.threads, "repeats": args.repeats,
        "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()), "export_s": export_s, "per_click_ms": {},
    }
    print(f"{args.model} decoder, image {height}x{width}, {args.threads} threads, median of {args.repeats} "
          f"(load average {os.getloadavg()[0]:.1f}); export took {export_s:.1f} s")
    for case, kwargs in {"first_click_multimask": first, "later_click_mask_input": later}.items():
        functions: dict[str, Callable[[], object]] = {"torch": lambda kw=kwargs: predictor.predict(**kw)}
        for name, decoder in decoders.items():
            functions[name] = lambda kw=kwargs, d=decoder: d.predict(**kw)
        with torch.inference_mode():
            times = rotated_medians(functions, args.repeats)
        medians = {name: 1000 * statistics.median(t) for name, t in times.items()}
        results["per_click_ms"][case] = {name: {"median": m, "runs": [1000 * t for t in times[name]]} for name, m in medians.items()}
        line = ", ".join(f"{name} {m:.1f} ms" for name, m in medians.items())
        speedup = medians["torch"] / medians["onnxruntime"]
        print(f"{case}: {line} (onnxruntime {speedup:.2f}x torch)")
    if args.out is not None:
        atomic_write_json(args.out, results)
        print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
