"""``clicksam download NAME``: fetch and verify an official checkpoint into the cache."""
from __future__ import annotations

import argparse

from clicksam.registry import get_config, list_models


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = [n for n in list_models() if get_config(n).weights is not None]
    parser.add_argument("name", choices=names, help="which checkpoint")
    parser.add_argument("--force", action="store_true", help="download again even if the file is cached")


def run(args: argparse.Namespace) -> int:
    from clicksam.download import download_checkpoint

    path = download_checkpoint(args.name, force=args.force)
    print(f"{args.name}: {path} (size and sha256 verified)")
    return 0
