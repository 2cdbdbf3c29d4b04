"""Arguments and model loading shared by the sub-commands."""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from clicksam.methods import method_help
from clicksam.registry import get_config, list_models

RANDOM_WEIGHTS_HELP = ("run a real model size with random weights on purpose (meaningless masks: tests and "
                       "speed checks); without it a size whose official file is not cached is refused")


def add_model_arguments(parser: argparse.ArgumentParser, default_model: str = "vit_b", method: bool = True) -> None:
    parser.add_argument("--model", default=default_model, choices=list_models(), help=f"registry name, see `clicksam models` (default {default_model})")
    parser.add_argument(
        "--checkpoint", action="append", type=Path, metavar="PATH",
        help="checkpoint file; repeat to add method files after the base (default: the cached official file)",
    )
    if method:
        parser.add_argument("--method", default="sam", help=f"{method_help()} (default sam)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--trust-checkpoint", action="store_true", help="allow checkpoints holding pickled objects (trusted files only)")
    add_random_weights_argument(parser)


def add_random_weights_argument(parser: argparse.ArgumentParser) -> None:
    """``--random-weights``, for the verbs that declare their model options themselves."""
    parser.add_argument("--random-weights", action="store_true", help=RANDOM_WEIGHTS_HELP)


def resolve_device(name: str) -> Any:
    """The torch device called ``name``; ValueError in one line when it cannot be used here.

    Checked before anything is built, so ``--device cuda`` on a CPU-only PyTorch (or with no GPU
    visible) fails with what to do instead of an AssertionError from deep inside torch.
    """
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if torch.version.cuda is None:
            raise ValueError(f"--device {name}: this PyTorch ({torch.__version__}) is built without CUDA; "
                             "use --device cpu, or install a CUDA build of PyTorch")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name}: no CUDA GPU is visible (driver, CUDA_VISIBLE_DEVICES?); "
                             "use --device cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: only {count} CUDA GPU(s) are visible (cuda:0 to cuda:{count - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: Apple's MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: clicksam runs on cpu, cuda or mps, not {device.type}")
    return device


@contextmanager
def cli_weights_message() -> Iterator[None]:
    """Reword a missing-weights refusal for the command line (``--checkpoint``, ``--random-weights``)."""
    from clicksam.download import MissingWeightsError, missing_checkpoint_message

    try:
        yield
    except MissingWeightsError as exc:
        raise MissingWeightsError(exc.model_name, missing_checkpoint_message(exc.model_name, cli=True)) from None


def announce_weights(model: Any, name: str) -> None:
    """Say on screen when the model's base weights are random."""
    if not getattr(model, "random_weights", False):
        return
    if get_config(name).has_official_weights:
        print(f"warning: {name} runs with random weights (--random-weights): its masks are meaningless", file=sys.stderr)
    else:
        print(f"note: '{name}' is an untrained test model with random weights; its masks are not meaningful")


def build_model(name: str, checkpoints: Optional[Sequence[Path]], methods: Sequence[str] = (), device: str = "cpu",
                trust_checkpoint: bool = False, random_weights: bool = False, download: bool = False) -> Any:
    """``build_sam`` for a verb: the device checked first, the official file downloaded when asked
    (``download``), a refusal worded for the command line, and random weights announced."""
    from clicksam.build import build_sam

    resolve_device(device)
    if download and not checkpoints and not random_weights and get_config(name).has_official_weights:
        from clicksam.download import download_checkpoint

        download_checkpoint(name)
    with cli_weights_message():
        model = build_sam(name, checkpoint=list(checkpoints) if checkpoints else None, methods=tuple(methods),
                          device=device, trust_checkpoint=trust_checkpoint, random_weights=random_weights)
    announce_weights(model, name)
    return model


def load_model(args: argparse.Namespace, download: bool = False, methods: tuple[str, ...] = ()):
    """Build the model the arguments of :func:`add_model_arguments` describe."""
    from clicksam.methods import parse_method

    stages = tuple(parse_method(getattr(args, "method", "sam"))) + tuple(methods)
    return build_model(args.model, args.checkpoint, stages, args.device, args.trust_checkpoint,
                       args.random_weights, download=download)


def parse_xy(text: str, what: str, n: int) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{what} {text!r} must be comma-separated numbers") from None
    if len(values) != n:
        raise ValueError(f"{what} {text!r} must have {n} comma-separated values")
    return values
