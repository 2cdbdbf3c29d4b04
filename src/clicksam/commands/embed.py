"""``clicksam embed IMAGES... --out DIR``: precompute embeddings into an on-disk cache (resumable).

``clicksam embed --config RECIPE`` builds the training embedding store that a training config
reads (its ``data.store``, from its datasets, with its model and checkpoint files);
``--dataset TYPE --data-root DIR --out STORE`` builds one for a single dataset.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
        from clicksam.train.store import run_embed_dataset  # the training package's store builder

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
