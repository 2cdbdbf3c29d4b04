"""``clicksam eval``: the click protocol or the prompt-robustness protocol on benchmark datasets.

Examples::

    clicksam eval --dataset GrabCut Berkeley DAVIS --data-root ../shared/data --model vit_b \\
        --checkpoint sam_vit_b_01ec64.pth --method sam --max-clicks 20 --out runs/sam_b
    clicksam eval --protocol prompts --box-noise 0.4 --dataset COIFT --data-root data/sam-hq \\
        --model vit_l --checkpoint sam_vit_l_0b3195.pth --method stable-sam --out runs/ssam_l

A killed run resumes when started again with the same ``--out`` and options.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from clicksam.commands.common import RANDOM_WEIGHTS_HELP
from clicksam.methods import method_help

from .datasets import EvalDataset, EvalObject, FolderDataset, ForegroundRule, load_dataset
from .prompts import PROMPT_TYPES
from .report import markdown_table, summarize_run, write_run_report
from .runner import RunSettings, prepare_run_dir, run_dataset
from .segmenter import Segmenter, build_oracle


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``eval`` options to ``parser``."""
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", nargs="+", metavar="NAME",
                      help="GrabCut, Berkeley, DAVIS, COCO_MVal, SBD, PascalVOC, HQSeg44K, DIS-VD, "
                           "ThinObject5K, COIFT, HRSOD (several allowed)")
    data.add_argument("--data-root", type=Path, help="folder of the dataset, or a parent folder holding it")
    data.add_argument("--images", type=Path, help="folder dataset: images folder (matched to --masks by stem)")
    data.add_argument("--masks", type=Path, help="folder dataset: masks folder")
    data.add_argument("--foreground", default="nonzero",
                      help="folder dataset: 'nonzero', 'gt:T' (value > T) or 'eq:V' (default nonzero)")
    data.add_argument("--ignore-value", type=int, default=None, help="folder dataset: mask value to ignore")
    data.add_argument("--name", default="folder", help="folder dataset: its name in reports")
    data.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N objects of each dataset")

    model = parser.add_argument_group("model")
    model.add_argument("--model", default="vit_b", help="registry name, e.g. vit_b, sam2.1_hiera_t, hq_vit_b (`clicksam models` lists them; default vit_b)")
    model.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                       help="checkpoint file; repeat for base + method files (default: the cached official file)")
    model.add_argument("--random-weights", action="store_true", help=RANDOM_WEIGHTS_HELP)
    model.add_argument("--method", default="sam", help=method_help())
    model.add_argument("--device", default="cpu", help="torch device (default cpu)")
    model.add_argument("--trust-checkpoint", action="store_true",
                       help="allow pickled objects in a checkpoint (an official mmengine training file); trusted files only")
    model.add_argument("--embedding-cache", type=Path, default=None, metavar="DIR",
                       help="keep image embeddings on disk here (reused by later runs and resumes)")
    model.add_argument("--oracle", default=None, metavar="SPEC",
                       help="evaluate an oracle instead of a model: 'erode:E1,E2,...[@SECONDS]', 'empty', 'full'")

    proto = parser.add_argument_group("protocol")
    proto.add_argument("--protocol", choices=("clicks", "prompts"), default="clicks")
    proto.add_argument("--max-clicks", type=int, default=20)
    proto.add_argument("--boundary", action="store_true", help="clicks: also record boundary IoU per click")
    proto.add_argument("--random-ties", action="store_true",
                       help="clicks: break ties among farthest pixels at random instead of row-major first")
    proto.add_argument("--seed", type=int, default=0)
    proto.add_argument("--box-noise", type=float, default=0.4, help="prompts: noisy-box level s (default 0.4)")
    proto.add_argument("--num-prompts", type=int, default=20, help="prompts: prompts per object and type")
    proto.add_argument("--prompt-types", nargs="+", default=list(PROMPT_TYPES), choices=PROMPT_TYPES)

    parser.add_argument("--out", type=Path, required=True, help="run folder (created, or resumed)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _datasets(args: argparse.Namespace) -> list[EvalDataset]:
    if args.images is not None or args.masks is not None:
        if args.images is None or args.masks is None:
            raise ValueError("a folder dataset needs both --images and --masks")
        if args.dataset:
            raise ValueError("give either --dataset or --images/--masks, not both")
        rule = ForegroundRule(args.foreground, args.ignore_value)
        return [FolderDataset(args.images, args.masks, rule, name=args.name)]
    if not args.dataset:
        raise ValueError("name a --dataset (with --data-root) or give --images and --masks")
    if args.data_root is None:
        raise ValueError("--data-root is required with --dataset")
    names = [n for item in args.dataset for n in item.split(",") if n]
    return [load_dataset(name, args.data_root) for name in names]


def _oracle_for(spec: str, dataset: EvalDataset) -> Segmenter:
    by_id = {o.object_id: o for o in dataset.objects}

    def lookup(object_id: str):
        return dataset.decode_gt(by_id[object_id])

    return build_oracle(spec, lookup)


def _model_segmenter(args: argparse.Namespace) -> Segmenter:
    from clicksam.commands.common import announce_weights, cli_weights_message, resolve_device

    from .sam_segmenter import build_sam_segmenter

    resolve_device(args.device)
    with cli_weights_message():
        segmenter = build_sam_segmenter(args.model, args.checkpoint, args.method, args.device, args.embedding_cache,
                                        random_weights=args.random_weights, trust_checkpoint=args.trust_checkpoint)
    announce_weights(segmenter.predictor.model, args.model)
    return segmenter


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; returns 0 on success."""
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    datasets = _datasets(args)
    settings = RunSettings(protocol=args.protocol, max_clicks=args.max_clicks, seed=args.seed,
                           random_ties=args.random_ties, with_boundary=args.boundary, box_noise=args.box_noise,
                           num_prompts=args.num_prompts, prompt_types=tuple(args.prompt_types))
    segmenters: dict[str, Segmenter]
    if args.oracle:
        segmenters = {d.name: _oracle_for(args.oracle, d) for d in datasets}
        extra: dict[str, Any] = {"model": None, "checkpoints": []}
    else:
        segmenter = _model_segmenter(args)
        segmenters = {d.name: segmenter for d in datasets}
        extra = {"model": args.model, "checkpoints": [str(p) for p in args.checkpoint], "device": args.device,
                 "random_weights": bool(segmenter.predictor.model.random_weights)}
    counts = {}
    for d in datasets:
        total = len(d.objects)
        counts[d.name] = min(total, args.limit) if args.limit else total
    extra.update({"datasets": [d.name for d in datasets], "objects": counts,
                  "data_roots": {d.name: str(d.root) for d in datasets}})
    first = next(iter(segmenters.values()))
    prepare_run_dir(args.out, settings, first, extra)
    skipped: list[str] = []

    def skip(obj: EvalObject, reason: str) -> None:
        from tqdm import tqdm

        skipped.append(obj.object_id)
        tqdm.write(f"skipped {obj.object_id}: {reason}", file=sys.stderr)

    for dataset in datasets:
        run_dataset(dataset, segmenters[dataset.name], args.out, settings, args.limit,
                    progress=not args.no_progress, on_skip=skip)
    outputs = write_run_report(args.out)
    print(markdown_table([summarize_run(args.out)]), end="")
    for kind, path in outputs.items():
        print(f"{kind}: {path}", file=sys.stderr)
    if skipped:
        print(f"{len(skipped)} object(s) skipped (unreadable image or mask, see above); the tables cover the "
              "others and say '(partial)'; fix the files and run the same command again to add them", file=sys.stderr)
        return 1
    return 0
