"""Arguments and model loading shared by the sub-commands."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from clicksam.methods import method_help
from clicksam.registry import get_config, list_models


def add_model_arguments(parser: argparse.ArgumentParser, default_model: str = "vit_b", method: bool = True) -> None:
    parser.add_argument("--model", default=default_model, choices=list_models(), help=f"model size (default {default_model})")
    parser.add_argument(
        "--checkpoint", action="append", type=Path, metavar="PATH",
        help="checkpoint file; repeat to add method files after the base (default: the cached official file)",
    )
    if method:
        parser.add_argument("--method", default="sam", help=f"{method_help()} (default sam)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--trust-checkpoint", action="store_true", help="allow checkpoints holding pickled objects (trusted files only)")


def resolve_checkpoints(model: str, checkpoints: Optional[list[Path]], download: bool = False) -> Optional[list[Path]]:
    """The files to load: the given ones, else the cached official file (downloaded if asked)."""
    if checkpoints:
        return list(checkpoints)
    if get_config(model).weights is None:
        return None
    from clicksam.download import download_checkpoint, find_checkpoint

    if download:
        return [download_checkpoint(model)]
    return [find_checkpoint(model)]


def load_model(args: argparse.Namespace, download: bool = False, methods: tuple[str, ...] = ()):
    """Build the model the arguments describe; says so on screen when it has no trained weights."""
    from clicksam.build import build_sam
    from clicksam.methods import parse_method

    files = resolve_checkpoints(args.model, args.checkpoint, download=download)
    stages = tuple(parse_method(getattr(args, "method", "sam"))) + tuple(methods)
    if files is None:
        print(f"note: '{args.model}' is an untrained test model with random weights; its masks are not meaningful")
    return build_sam(args.model, checkpoint=files, methods=stages, device=args.device, trust_checkpoint=args.trust_checkpoint)


def parse_xy(text: str, what: str, n: int) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{what} {text!r} must be comma-separated numbers") from None
    if len(values) != n:
        raise ValueError(f"{what} {text!r} must have {n} comma-separated values")
    return values
