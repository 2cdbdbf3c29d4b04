"""``clicksam eval-report``: several evaluation runs in one table and one plot.

Example::

    clicksam eval-report runs/sam_b runs/focsam_b --out runs/compare
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .report import click_caps, mixed_caps_warning, summarize_run, write_comparison, write_run_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``eval-report`` options to ``parser``."""
    parser.add_argument("runs", nargs="+", type=Path, help="run folders written by 'clicksam eval'")
    parser.add_argument("--out", type=Path, default=Path("runs/report"),
                        help="folder for comparison.md, comparison.png and comparison.json (default runs/report)")
    parser.add_argument("--refresh", action="store_true",
                        help="also rewrite each run's own summary.json, results.md and miou.png")


def run(args: argparse.Namespace) -> int:
    """Write the comparison and print its table; returns 0."""
    for run_dir in args.runs:
        if not run_dir.is_dir():
            raise ValueError(f"run folder not found: {run_dir}")
        if args.refresh:
            write_run_report(run_dir)
    outputs = write_comparison(args.runs, args.out)
    print(Path(outputs["table"]).read_text(encoding="utf-8"), end="")
    for kind, path in outputs.items():
        print(f"{kind}: {path}", file=sys.stderr)
    caps = click_caps([summarize_run(d) for d in args.runs])
    if len(caps) > 1:
        print(f"warning: {mixed_caps_warning(caps)}", file=sys.stderr)
    return 0
