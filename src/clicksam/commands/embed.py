"""``clicksam embed IMAGES... --out DIR``: precompute embeddings into an on-disk cache (resumable).

``clicksam embed --config RECIPE`` builds the training embedding store that a training config
reads (its ``data.store``, from its datasets, with its model and checkpoint files);
``--dataset TYPE --data-root DIR --out STORE`` builds one for a single dataset.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from clicksam.commands.common import add_model_arguments, add_runtime_arguments, load_model, runtime_options

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", type=Path, help="image files or folders of images")
    add_model_arguments(parser, method=False)
    add_runtime_arguments(parser)
    # None = not given: a training config's model/device apply unless these are given
    parser.set_defaults(model=None, device=None)
    parser.add_argument("--out", type=Path,
                        help="embedding cache folder (reused by segment/eval/serve); with --config: the store folder "
                             "(default: the config's data.store)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="build the training embedding store of a training config (e.g. recipes/*.json) instead")
    parser.add_argument("--dataset", help="build a training embedding store for one dataset type instead (see `clicksam train`)")
    parser.add_argument("--data-root", type=Path, help="dataset folder for --dataset")


def collect_images(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such image or folder: {path}")
    return found


def run(args: argparse.Namespace) -> int:
    if args.dataset or args.config:
        if (args.runtime, args.encoder_precision) != ("torch", "fp32"):
            raise ValueError("a training embedding store is computed with torch in fp32 (what training reads); "
                             "drop --runtime/--encoder-precision with --dataset/--config")
        return run_embed_dataset(args)
    if args.out is None:
        raise ValueError("--out DIR is required (the embedding cache folder)")
    args.model = args.model or "vit_b"
    args.device = args.device or "cpu"
    from tqdm import tqdm

    from clicksam.cache import EmbeddingCache
    from clicksam.images import ImageReadError, read_image
    from clicksam.predictor import SamPredictor

    images = collect_images(args.images)
    if not images:
        raise ValueError("no images given; pass image files or folders (or --dataset NAME --data-root DIR)")
    cache = EmbeddingCache(args.out, max_items=1)
    options = runtime_options(args)
    predictor = SamPredictor(load_model(args), cache=cache, **options)
    computed = reused = 0
    skipped: list[Path] = []
    for path in tqdm(images, desc="embedding", unit="img"):
        try:
            image = read_image(path)
        except (ImageReadError, FileNotFoundError) as exc:  # one bad file does not stop the folder
            skipped.append(path)
            tqdm.write(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        predictor.set_image(image)
        if predictor.last_encode_cached:
            reused += 1
        else:
            computed += 1
    print(f"{len(images)} images: {computed} encoded, {reused} already in {args.out}")
    if skipped:
        print(f"{len(skipped)} images skipped (unreadable, see above); the others are embedded", file=sys.stderr)
        return 1
    return 0


@dataclass
class _EmbedPlan:
    """What ``clicksam embed --config/--dataset`` builds: sources, model files, store folder."""

    specs: list[dict[str, Any]]
    min_area: int
    model: str
    checkpoints: Optional[list[str]]
    out: Path
    device: str
    random_weights: bool


def _plan_from_config(args: argparse.Namespace, path: Path) -> _EmbedPlan:
    from clicksam.training.config import load_config, override_model

    config = load_config(path)
    note = override_model(config, args.model, [str(p) for p in args.checkpoint] if args.checkpoint else None)
    if note:
        print(f"note: {note}")
    out = args.out or (Path(config.data.store) if config.data.store else None)
    if out is None:
        raise ValueError(f"{path} has no data.store; pass --out STORE (and set data.store to it for training)")
    return _EmbedPlan([dict(s) for s in config.data.datasets], config.data.min_area, config.model,
                      [os.path.expanduser(p) for p in config.checkpoint], Path(out), args.device or config.device,
                      config.random_weights or args.random_weights)


def _plan_from_dataset(args: argparse.Namespace) -> _EmbedPlan:
    if args.out is None:
        raise ValueError("--dataset needs --out STORE (the store folder to build)")
    spec: dict[str, Any] = {"type": args.dataset}
    if args.data_root is not None:
        spec["root"] = str(args.data_root)
    files = [str(f) for f in args.checkpoint] if args.checkpoint else None  # None: the cached official file
    return _EmbedPlan([spec], 100, args.model or "vit_b", files, Path(args.out), args.device or "cpu", args.random_weights)


def run_embed_dataset(args: argparse.Namespace) -> int:
    """``clicksam embed --config FILE`` or ``--dataset TYPE --data-root DIR --out STORE``: build or
    resume a training embedding store (:func:`clicksam.train.store.build_embedding_store`).

    With ``--config`` (a training config, JSON/TOML), the store is the one the run reads: its
    ``data.datasets`` and ``data.min_area``, its ``model`` and ``checkpoint`` files, written to its
    ``data.store``; ``--model``, ``--checkpoint``, ``--out`` and ``--device`` override them as they
    do for ``clicksam train``. ``--dataset`` names one reader (coco, lvis, coco-panoptic, sbd,
    hqseg, folder, synthetic), or a config file (the same as ``--config``); the model then comes
    from ``--model`` (default vit_b) and ``--checkpoint`` (default: the cached official file). An
    untrained test model is initialised with seed 0, as the trainer does.
    """
    import torch

    from clicksam.commands.common import build_model
    from clicksam.train.readers import build_source
    from clicksam.train.store import build_embedding_store

    if args.config is not None and args.dataset:
        raise ValueError("give either --config FILE or --dataset TYPE, not both")
    config_path = args.config
    if config_path is None and Path(args.dataset).suffix.lower() in (".json", ".toml"):
        config_path = Path(args.dataset)
    plan = _plan_from_config(args, config_path) if config_path is not None else _plan_from_dataset(args)
    device = plan.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    sources = [build_source(s, min_area=plan.min_area) for s in plan.specs]
    # seed 0 (build_sam's default), as the trainer's build_base_model: an untrained test model gets the trainer's weights
    model = build_model(plan.model, plan.checkpoints, device=device, trust_checkpoint=args.trust_checkpoint,
                        random_weights=plan.random_weights)
    summary = build_embedding_store(sources, plan.out, model, dataset_specs=plan.specs)
    skipped: Counter[str] = Counter()
    for source in sources:
        skipped.update(source.skipped)
    print(f"{summary.images} images in {summary.path}: {summary.encoded} encoded now, "
          f"{summary.shards_reused} shards reused; annotations skipped: {dict(skipped) or 'none'}")
    return 0
