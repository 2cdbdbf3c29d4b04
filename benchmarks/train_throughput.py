"""Training throughput: samples/s and the fraction of step time spent waiting for data.

Runs the real trainer (method ``decoder`` by default) on synthetic scenes, with an embedding store
(the normal setup for frozen-encoder training) or with the encoder running every step
(``--no-store``). The first ``--warmup`` steps are left out of the figures.

    python benchmarks/train_throughput.py                       # tiny model, CPU
    python benchmarks/train_throughput.py --device cuda --batch 16 --steps 30   # GPU: bf16 autocast

Prints one JSON object (also written to ``--json``).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--method", default="decoder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=2, help="global batch size")
    parser.add_argument("--steps", type=int, default=8, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--workers", type=int, default=2, help="data-loader worker processes")
    parser.add_argument("--images", type=int, default=16, help="synthetic scenes in the dataset")
    parser.add_argument("--max-clicks", type=int, default=20)
    parser.add_argument("--no-store", action="store_true", help="run the frozen encoder every step instead of a store")
    parser.add_argument("--amp", default="auto", choices=("auto", "bf16", "off"))
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)

    import torch

    from clicksam.training.config import config_from_dict
    from clicksam.train.readers import build_source
    from clicksam.training.run_files import read_metrics
    from clicksam.train.store import build_embedding_store
    from clicksam.training.trainer import Trainer, build_base_model

    dataset = {"type": "synthetic", "count": args.images, "seed": 0}
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    with tempfile.TemporaryDirectory() as tmp:
        store = None
        store_s = 0.0
        if not args.no_store:
            store = Path(tmp) / "store"
            t0 = time.perf_counter()
            model = build_base_model(args.model, device=device, random_weights=True)  # throughput only
            build_embedding_store([build_source(dataset)], store, model, batch_size=2, progress=False)
            store_s = time.perf_counter() - t0
            del model
        config = config_from_dict({
            "method": args.method, "model": args.model, "random_weights": True, "device": device, "amp": args.amp,
            "data": {"datasets": [dataset], "store": str(store) if store else None, "num_workers": args.workers},
            "optim": {"lr": 1e-4, "warmup_steps": 1}, "batch_size": args.batch,
            "steps": args.warmup + args.steps, "out_dir": str(Path(tmp) / "run"), "checkpoint_every": 10**9,
            "log_every": 1, "options": {"max_clicks": args.max_clicks} if args.method == "decoder" else {},
        })
        trainer = Trainer(config, progress=False)
        trainer.run()
        records = read_metrics(Path(tmp) / "run" / "metrics.jsonl")[args.warmup:]
    step_s = [args.batch / r["samples_per_s"] for r in records]
    wait_s = [f * s for f, s in zip((r["data_wait_fraction"] for r in records), step_s)]
    total = sum(step_s)
    result = {
        "model": args.model, "method": args.method, "device": device,
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(), "bf16": trainer.use_bf16, "store": store is not None,
        "batch": args.batch, "timed_steps": len(records), "workers": args.workers,
        "samples_per_s": round(args.batch * len(records) / total, 3),
        "step_s_mean": round(total / len(records), 3),
        "data_wait_fraction": round(sum(wait_s) / total, 4),
        "mean_clicks": round(sum(r.get("clicks", 0) for r in records) / len(records), 2),
        "store_build_s": round(store_s, 1),
    }
    text = json.dumps(result)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
