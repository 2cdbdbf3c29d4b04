"""``clicksam models``: the registry, with each checkpoint's size and cache state."""
from __future__ import annotations

import argparse

from clicksam.registry import get_config, list_models


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import json

    from clicksam.download import cached_checkpoint

    rows = []
    for name in list_models():
        cfg = get_config(name)
        w = cfg.weights
        path = cached_checkpoint(name) if w else None
        rows.append({
            "name": name,
            "description": cfg.description,
            "file": w.filename if w else "-",
            "bytes": w.num_bytes if w else 0,
            "sha256": w.sha256 if w else "",
            "url": w.download_url if w else "",
            "cached": bool(path and path.is_file()),
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<7} {'file':<22} {'size':>9}  {'cached':<6}  description")
    for r in rows:
        size = f"{r['bytes'] / 1e6:,.0f} MB" if r["bytes"] else "-"
        print(f"{r['name']:<7} {r['file']:<22} {size:>9}  {'yes' if r['cached'] else 'no':<6}  {r['description']}")
    return 0
