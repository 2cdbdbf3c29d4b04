"""The confirmation plan at a larger scale, on one GPU (issue 19 item 9), meant to finish in
about 10 minutes on one recent data-centre GPU with 16 CPU cores.

The same jobs as ``confirm.py`` (the shared base, FocSAM's stage 1, each method with 3 seeds, the
combinations, the pre-registered verdicts), with a stronger base and more data:

* base: patch 8 (a 32×32 embedding at the 256-px frame, 4× the tokens of the CPU base), encoder
  width 128 and depth 4, trained on 8000 scenes (drawn by 12 processes), batch 16;
* step budgets: base 4000, stage 1 1000, refiner 1500, SAM-REF 1500, Stable-SAM 3000;
* evaluation: 400 held-out scenes of family 4000 (never used before: the CPU confirmation uses 3000).

Outputs: ``results/<script>/gpu/seedK/`` per run, ``results/gpu/report.md`` for the verdicts, float16
weights in ``experiments/models/``. Nothing was run on a GPU yet (no GPU machine was lent to the
session that wrote this); the budgets are estimates: ``--steps-factor``, ``--seeds`` and ``--scenes``
shrink the plan if it runs over, and every job resumes where it stopped.

    .venv/bin/python experiments/gpu_scale.py run        # then: status, report, commands
    .venv/bin/python experiments/gpu_scale.py run --device cpu --tiny --results /tmp/gpu_plan   # a smoke run
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import confirm  # noqa: E402

GPU = confirm.Scale(
    "gpu", (0, 1, 2), 4000, 400, base_steps=4000, decoder_steps=1000, focsam_steps=1500, sam_ref_steps=1500,
    stable_steps=3000,
    design="--patch 8 --encoder-dim 128 --encoder-depth 4 --train-scenes 8000 --batch 16 --render-workers 12 "
           "--device cuda",
    base_threads=4, slots=6)
# The same plan at a size a 2-core CPU runs in a few minutes (the test suite runs it, so it cannot rot).
TINY = dataclasses.replace(
    GPU, seeds=(0, 1), scenes=2, base_steps=6, decoder_steps=3, focsam_steps=3, sam_ref_steps=3, stable_steps=4,
    design="--frame 64 --patch 8 --encoder-dim 32 --encoder-depth 1 --train-scenes 12 --batch 2 --render-workers 2 "
           "--device cuda",
    base_threads=1, slots=2)


def scale_from(args: argparse.Namespace) -> confirm.Scale:
    """The plan the options ask for."""
    base = TINY if args.tiny else GPU
    factor = args.steps_factor
    steps = {f: max(1, round(getattr(base, f) * factor))
             for f in ("base_steps", "decoder_steps", "focsam_steps", "sam_ref_steps", "stable_steps")}
    return dataclasses.replace(
        base, seeds=tuple(range(args.seeds)) if args.seeds else base.seeds, scenes=args.scenes or base.scenes,
        design=base.design.replace("--device cuda", f"--device {args.device}"),
        results=args.results or base.results, slots=args.slots or base.slots, **steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("run", "status", "report", "commands"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the test size (CPU, minutes)")
    parser.add_argument("--steps-factor", type=float, default=1.0, help="scale every step budget")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; at least 2)")
    parser.add_argument("--scenes", type=int, default=None, help="held-out scenes per run")
    parser.add_argument("--slots", type=int, default=None, help="CPU threads shared by the jobs running at once")
    parser.add_argument("--results", type=Path, default=None, help="results folder (default experiments/results)")
    args = parser.parse_args(argv)
    return confirm.main([args.command], scale_from(args))


if __name__ == "__main__":
    sys.exit(main())
