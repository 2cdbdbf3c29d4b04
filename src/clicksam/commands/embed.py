"""``clicksam embed IMAGES... --out DIR``: precompute embeddings into an on-disk cache (resumable)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clicksam.commands.common import add_model_arguments, load_model

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", type=Path, help="image files or folders of images")
    add_model_arguments(parser, method=False)
    parser.add_argument("--out", type=Path, required=True, help="embedding cache folder (reused by segment/eval/serve)")
    parser.add_argument("--dataset", help="precompute a training embedding store for a dataset instead (see `clicksam train`)")
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
    if args.dataset:
        return run_embed_dataset(args)
    from tqdm import tqdm

    from clicksam.cache import EmbeddingCache
    from clicksam.images import ImageReadError, read_image
    from clicksam.predictor import SamPredictor

    images = collect_images(args.images)
    if not images:
        raise ValueError("no images given; pass image files or folders (or --dataset NAME --data-root DIR)")
    cache = EmbeddingCache(args.out, max_items=1)
    predictor = SamPredictor(load_model(args), cache=cache)
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


def run_embed_dataset(args: argparse.Namespace) -> int:
    """``clicksam embed --dataset TYPE --data-root DIR --out STORE``: build or resume a store.

    TYPE is a reader name (coco, lvis, coco-panoptic, sbd, hqseg, folder, synthetic) or a training
    config file (JSON/TOML) whose ``data.datasets`` are used. The model comes from the usual
    ``--model/--checkpoint/--device`` arguments; an untrained test model is initialised with
    seed 0, as the trainer does.
    """
    from collections import Counter

    from clicksam.commands.common import build_model
    from clicksam.train.readers import build_source
    from clicksam.train.store import build_embedding_store
    from clicksam.training.config import load_config

    if Path(args.dataset).suffix.lower() in (".json", ".toml"):
        config = load_config(args.dataset)
        specs = [dict(s) for s in config.data.datasets]
        min_area = config.data.min_area
    else:
        spec: dict = {"type": args.dataset}
        if args.data_root is not None:
            spec["root"] = str(args.data_root)
        specs, min_area = [spec], 100
    sources = [build_source(s, min_area=min_area) for s in specs]
    # seed 0 (build_sam's default), as the trainer's build_base_model: an untrained test model gets the trainer's weights
    model = build_model(args.model, args.checkpoint, device=args.device, trust_checkpoint=args.trust_checkpoint,
                        random_weights=args.random_weights)
    summary = build_embedding_store(sources, args.out, model, dataset_specs=specs)
    skipped: Counter = Counter()
    for source in sources:
        skipped.update(source.skipped)
    print(f"{summary.images} images in {summary.path}: {summary.encoded} encoded now, "
          f"{summary.shards_reused} shards reused; annotations skipped: {dict(skipped) or 'none'}")
    return 0
