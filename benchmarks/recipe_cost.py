"""What the recipes in ``recipes/`` cost on a GPU: an estimate from counted work, labelled as such.

No GPU was available when the recipes were written, so nothing here is a GPU measurement. Per
recipe the script *counts*, on this CPU:

* the image encoder's FLOPs per 1024×1024 image for the recipe's model (``FlopCounterMode`` on
  the meta device: exact for matmuls and convolutions, no compute);
* per training step at the recipe's batch size, with the recipe's method and options: the FLOPs
  (forward and backward), the number of operator calls that launch work (every aten op but views:
  on a GPU each is at least one kernel launch, which is what bounds small-tensor work such as the
  click simulation and the decoder), the decoder/refiner calls, and the bytes of the tensors
  autograd saves for backward (the activation memory). The step runs on
  the ``tiny`` model with an embedding store of synthetic scenes: with a store the encoder never
  runs in a step, and the prompt encoder, decoder and method stages are the same for every size.

and turns the counts into GPU hours with two published anchors: SAM's ViT-H encoder takes ~0.15 s
per image on an A100 (the segment-anything FAQ), and SAM's mask decoder ~4 ms a call on one GPU
(MobileSAM's README):

    R            = ViT-H encoder FLOPs / 0.15 s                  (FLOP rate on big matmuls)
    t_op         = 4 ms / operator calls of one decoder call      (cost of a small launch-bound op)
    store hours  = images × encoder FLOPs / R
    step seconds = step FLOPs / R + step operator calls × t_op

Memory: weights of the whole model (float32; the trainer holds the frozen encoder even with a
store) + 4 × the trainable weights (weights, gradients, AdamW moments) + the saved activations
(counted in float32; bf16 autocast stores many of them at half that), × 1.3 for the allocator;
on one GPU with the whole batch, and per GPU when 4 share it (torchrun).

    python benchmarks/recipe_cost.py                       # every recipe
    python benchmarks/recipe_cost.py recipes/focsam_vit_h_stage1.json --steps 2

Writes one JSON file to ``--out`` (default ``benchmarks/results/recipe_cost_<time>.json``) and
prints a Markdown table. ``--apply FILE.json`` writes a result's figures into the recipes' ``notes``
(the line starting ``Cost estimate``) and into the table of docs/training.md (between its
``recipe-cost`` markers); tests/recipes/test_recipe_files.py checks that they agree.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
# Images (one object each for HQSeg-44K) in the recipes' training sets: HQSeg-44K train as HQ-SAM
# lists it; COCO 2017 train (panoptic annotations cover every image) and LVIS v1 train.
DATASET_IMAGES = {"hqseg": 44_320, "coco-panoptic": 118_287, "lvis": 100_170}
VIT_H_A100_S = 0.15  # segment-anything FAQ: "The image encoder takes ~0.15 seconds on an NVIDIA A100 GPU"
DECODER_CALL_MS = 4.0  # MobileSAM README: SAM's mask decoder, 4 ms on a single GPU
STORE_BYTES_PER_IMAGE = 256 * 64 * 64 * 2  # float16 embedding


def encoder_flops(model_name: str) -> tuple[int, int]:
    """(FLOPs of the image encoder on one 1024² image, parameters of the whole model)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from clicksam.build import sam_from_config
    from clicksam.registry import get_config

    with torch.device("meta"):
        model = sam_from_config(get_config(model_name))
        with FlopCounterMode(display=False) as counter:
            model.image_encoder(torch.zeros(1, 3, model.image_size, model.image_size))
    return int(counter.get_total_flops()), sum(p.numel() for p in model.parameters())


class OpCounter:
    """A dispatch mode counting the operator calls that launch work (aten ops that are not views)."""

    def __new__(cls):
        from torch.utils._python_dispatch import TorchDispatchMode

        class _Counter(TorchDispatchMode):
            def __init__(self) -> None:
                super().__init__()
                self.count = 0

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if not func.is_view:
                    self.count += 1
                return func(*args, **(kwargs or {}))

        return _Counter()


def decoder_call_ops() -> int:
    """Operator calls of one SAM decoder call (one click, multimask), the anchor's unit."""
    import torch

    from clicksam.training.trainer import build_base_model

    model = build_base_model("tiny")
    embedding = torch.zeros(1, 256, 64, 64)
    points = (torch.tensor([[[500.0, 400.0]]]), torch.ones(1, 1))
    with torch.no_grad(), OpCounter() as counter:
        model.decode(embedding, points=points, multimask_output=True)
    return counter.count


@contextmanager
def count_calls(model: Any, counts: dict[str, list[int]]) -> Iterator[None]:
    """Count decoder/refiner calls, split by whether autograd records them ([no-grad, grad])."""
    import torch

    targets = {"decode": model}
    for attr in ("focus_refiner", "sam_ref"):
        if getattr(model, attr, None) is not None:
            targets[attr] = getattr(model, attr)
    originals = {}
    for name, owner in targets.items():
        method = "decode" if name == "decode" else "forward"
        original = getattr(owner, method)
        originals[name] = (owner, method, original)

        def wrapped(*a, _orig=original, _name=name, **k):
            counts.setdefault(_name, [0, 0])[int(torch.is_grad_enabled())] += 1
            return _orig(*a, **k)

        setattr(owner, method, wrapped)
    try:
        yield
    finally:
        for owner, method, original in originals.values():
            setattr(owner, method, original)


def step_costs(recipe: Path, steps: int, work: Path, max_batch: int) -> dict[str, Any]:
    """Run ``steps`` training steps of ``recipe`` on ``tiny`` (synthetic store) and count their work.

    Batches above ``max_batch`` are counted at ``max_batch`` and the FLOPs and saved bytes scaled
    to the recipe's batch (both are per-sample sums); the call counts are kept as counted (grouped
    calls grow more slowly than the batch, so they are a lower bound there).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from clicksam.training.config import load_config
    from clicksam.train.readers import build_source
    from clicksam.train.store import build_embedding_store
    from clicksam.training.trainer import Trainer, build_base_model

    config = load_config(recipe)
    synthetic = {"type": "synthetic", "count": max(8, config.batch_size), "seed": 0}
    store = work / f"store_{recipe.stem}"
    build_embedding_store([build_source(synthetic)], store, build_base_model("tiny"), batch_size=4, progress=False)
    config.model, config.checkpoint = "tiny", []
    config.data.datasets, config.data.store, config.data.num_workers = [synthetic], str(store), 0
    config.device, config.amp, config.steps = "cpu", "off", steps
    scale = max(1.0, config.batch_size / max_batch)
    config.batch_size = min(config.batch_size, max_batch)
    config.out_dir, config.checkpoint_every = str(work / f"run_{recipe.stem}"), 10**9
    trainer = Trainer(config, progress=False)
    per_step: list[dict[str, Any]] = []
    saved = {"bytes": 0, "seen": set()}
    weights = {p.untyped_storage().data_ptr() for p in trainer.model.parameters()}  # not activations

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if key not in saved["seen"] and key[0] not in weights:
            saved["seen"].add(key)
            saved["bytes"] += key[1]
        return tensor

    calls: dict[str, list[int]] = {}
    start = [time.perf_counter()]

    def on_step(_trainer: Trainer, _record: dict[str, Any]) -> None:
        per_step.append({"flops": counter.get_total_flops(), "ops": ops.count, "saved_bytes": saved["bytes"],
                         "calls": {k: list(v) for k, v in calls.items()}, "cpu_s": time.perf_counter() - start[0]})
        saved["bytes"], saved["seen"] = 0, set()
        calls.clear()
        start[0] = time.perf_counter()

    with count_calls(trainer.model, calls), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with FlopCounterMode(display=False) as counter, OpCounter() as ops:
            trainer.run(on_step=on_step)
    flops = [s["flops"] - (per_step[i - 1]["flops"] if i else 0) for i, s in enumerate(per_step)]
    op_counts = [s["ops"] - (per_step[i - 1]["ops"] if i else 0) for i, s in enumerate(per_step)]
    trainable = sum(p.numel() for _, p in trainer.params)
    mean_calls: dict[str, list[float]] = {}
    for s in per_step:
        for name, (nograd, grad) in s["calls"].items():
            acc = mean_calls.setdefault(name, [0.0, 0.0])
            acc[0] += nograd / len(per_step)
            acc[1] += grad / len(per_step)
    return {
        "counted_batch": config.batch_size, "scaled_by": scale,
        "step_flops": scale * sum(flops) / len(flops),
        "step_ops": sum(op_counts) / len(op_counts),
        "step_saved_bytes_max": scale * max(s["saved_bytes"] for s in per_step),
        "calls_per_step": {k: [round(v[0], 2), round(v[1], 2)] for k, v in mean_calls.items()},
        "trainable_parameters": trainable, "cpu_s_per_step": [round(s["cpu_s"], 2) for s in per_step],
    }


def estimate(recipe: Path, counted: dict[str, Any], encoder: dict[str, tuple[int, int]], op_s: float) -> dict[str, Any]:
    """GPU hours and memory of the full recipe from the counts (see the module docstring)."""
    from clicksam.training.config import load_config

    config = load_config(recipe)
    rate = encoder["vit_h"][0] / VIT_H_A100_S  # FLOP/s the published ViT-H time implies
    enc_flops, params = encoder[config.model]
    images = sum(DATASET_IMAGES[d["type"]] for d in config.data.datasets)
    step_s = counted["step_flops"] / rate + counted["step_ops"] * op_s
    fixed = params * 4 + counted["trainable_parameters"] * 4 * 4  # weights + grads/AdamW of the trained part
    memory = (fixed + counted["step_saved_bytes_max"]) * 1.3
    memory_4 = (fixed + counted["step_saved_bytes_max"] / 4) * 1.3  # torchrun on 4 GPUs: a quarter of the batch each
    return {
        "recipe": recipe.name, "method": config.method, "model": config.model, "batch_size": config.batch_size,
        "steps": config.steps, "store_images": images, "store_gib": round(images * STORE_BYTES_PER_IMAGE / 2**30, 1),
        "encoder_tflops_per_image": round(enc_flops / 1e12, 3),
        "store_gpu_hours": round(images * enc_flops / rate / 3600, 1),
        "step_tflops": round(counted["step_flops"] / 1e12, 3), "step_op_calls": round(counted["step_ops"]),
        "step_s_estimate": round(step_s, 3),
        "train_gpu_hours": round(config.steps * step_s / 3600, 2),
        "peak_memory_gib_estimate": round(memory / 2**30, 1),
        "peak_memory_gib_per_gpu_on_4": round(memory_4 / 2**30, 1),
        "counted": counted,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| recipe | batch × steps | store: images, disk, GPU h | TFLOP / ops per step | s/step | training GPU h "
             "| memory GiB: 1 GPU / each of 4 |", "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r['recipe']}` | {r['batch_size']} × {r['steps']:,} | {r['store_images']:,}, {r['store_gib']} GiB, "
                     f"{r['store_gpu_hours']} | {r['step_tflops']} / {r['step_op_calls']:,} | {r['step_s_estimate']} | "
                     f"{r['train_gpu_hours']} | {r['peak_memory_gib_estimate']} / {r['peak_memory_gib_per_gpu_on_4']} |")
    return "\n".join(lines)


COST_NOTE = "Cost estimate"
TABLE_START, TABLE_END = "<!-- recipe-cost:start -->", "<!-- recipe-cost:end -->"


def cost_note(row: dict[str, Any], source: str) -> str:
    """The recipe note that states a row's figures."""
    return (f"{COST_NOTE} ({source}; counted on a CPU and scaled by published A100 figures, see "
            f"docs/training.md#cost): store {row['store_images']:,} images, {row['store_gib']} GiB, "
            f"{row['store_gpu_hours']} GPU h; training {row['train_gpu_hours']} GPU h "
            f"({row['step_s_estimate']} s/step); memory {row['peak_memory_gib_estimate']} GiB on one GPU, "
            f"{row['peak_memory_gib_per_gpu_on_4']} GiB each on 4.")


def table_block(result: dict[str, Any], source: str) -> str:
    return f"{TABLE_START}\nFrom `{source}`:\n\n{markdown(result['recipes'])}\n{TABLE_END}"


def apply(result_path: Path) -> None:
    """Write a result's figures into the recipes' notes and docs/training.md."""
    result = json.loads(result_path.read_text())
    source = result_path.relative_to(ROOT).as_posix() if result_path.is_absolute() else result_path.as_posix()
    for row in result["recipes"]:
        path = ROOT / "recipes" / row["recipe"]
        recipe = json.loads(path.read_text())
        notes = [n for n in recipe["notes"] if not n.startswith(COST_NOTE) and not n.startswith("Cost: see")]
        recipe["notes"] = notes + [cost_note(row, source)]
        path.write_text(json.dumps(recipe, indent=2) + "\n")
    doc = ROOT / "docs" / "training.md"
    text = doc.read_text()
    start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
    doc.write_text(text[:start] + table_block(result, source) + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipes", nargs="*", type=Path, help="recipe files (default: recipes/*.json)")
    parser.add_argument("--steps", type=int, default=3, help="counted training steps per recipe")
    parser.add_argument("--max-batch", type=int, default=4, help="count larger batches at this size and scale")
    parser.add_argument("--out", type=Path, help="JSON result file")
    parser.add_argument("--apply", type=Path, metavar="FILE.json",
                        help="write a result's figures into the recipes' notes and docs/training.md, then stop")
    args = parser.parse_args(argv)
    if args.apply:
        apply(args.apply)
        return 0
    import torch

    from clicksam.training.config import load_config

    recipes = args.recipes or sorted((ROOT / "recipes").glob("*.json"))
    encoder = {name: encoder_flops(name) for name in ("vit_b", "vit_l", "vit_h")}
    op_s = DECODER_CALL_MS / 1000 / decoder_call_ops()
    rows, counted = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in recipes:
            # recipes that differ only in the SAM size have the same steps: count them once
            config = load_config(recipe)
            key = json.dumps([config.method, config.options, config.batch_size], sort_keys=True)
            if key not in counted:
                print(f"counting {recipe.name} ...", file=sys.stderr)
                counted[key] = step_costs(recipe, args.steps, Path(tmp), args.max_batch)
            rows.append(estimate(recipe, counted[key], encoder, op_s))
    result = {
        "what": "ESTIMATES, not GPU measurements: counted FLOPs/calls/activations on a CPU, scaled by published A100 "
                "anchors (see benchmarks/recipe_cost.py)",
        "anchors": {"vit_h_encoder_a100_s": VIT_H_A100_S, "decoder_call_ms": DECODER_CALL_MS,
                    "implied_tflop_per_s": round(encoder["vit_h"][0] / VIT_H_A100_S / 1e12, 1),
                    "decoder_call_ops": round(DECODER_CALL_MS / 1000 / op_s), "op_us": round(op_s * 1e6, 2)},
        "encoder_tflops_per_image": {k: round(v[0] / 1e12, 3) for k, v in encoder.items()},
        "dataset_images": DATASET_IMAGES, "counted_steps": args.steps, "max_count_batch": args.max_batch,
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "recipes": rows,
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"recipe_cost_{time.strftime('%Y%m%d_%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(rows))
    print(f"written: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
