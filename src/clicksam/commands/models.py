"""``clicksam models``: the registry, with each checkpoint's size and cache state, and the method
checkpoints published by the papers' authors (downloaded by hand)."""
from __future__ import annotations

import argparse

from clicksam.registry import get_config, list_models


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--verify", action="store_true",
                        help="also check each cached file's sha256 (reads every file; exit 1 if one is damaged)")


def _fix(name: str, state: str) -> str:
    if state.startswith("corrupt"):
        return f"`clicksam download {name} --force` replaces it"
    return f"`clicksam download {name}` completes it"


def _published_rows() -> list[dict]:
    """The method checkpoints the methods' authors publish (each method's spec lists its own)."""
    from clicksam.methods.registry import specs

    return [{"name": p.name, "model": p.model, "methods": [spec.name], "description": p.description,
             "file": p.filename, "bytes": p.num_bytes, "sha256": p.sha256, "url": p.page_url,
             "cached": False, "state": "download by hand", "random_weights": False, "download": p.instructions}
            for spec in specs() for p in spec.published_weights]


def _print_published(rows: list[dict]) -> None:
    print("\npublished method checkpoints (download by hand, then pass --checkpoint FILE):")
    for p in rows:
        print(f"{p['name']:<13} {p['file']:<16} base {p['model']}, method {'+'.join(p['methods'])}: {p['description']}")
        print(f"{'':<13} {p['url']}\n{'':<13} {p['download']}")


def run(args: argparse.Namespace) -> int:
    import json

    from clicksam.download import cache_state

    rows = []
    for name in list_models():
        cfg = get_config(name)
        w = cfg.weights
        state, usable = cache_state(name, verify=args.verify)
        rows.append({
            "name": name,
            "family": cfg.family,
            "description": cfg.description,
            "file": w.filename if w else "-",
            "bytes": w.num_bytes if w else 0,
            "sha256": w.sha256 if w else "",
            "url": w.download_url if w else "",
            "cached": usable,
            "state": state,
            "random_weights": not cfg.has_official_weights,
        })
    damaged = [r for r in rows if r["state"].startswith(("incomplete", "wrong size", "corrupt"))]
    published = _published_rows()
    if args.json:
        print(json.dumps(rows + published, indent=2))
    else:
        width = max(len(r["state"]) for r in rows)
        name_w, family_w, file_w = (max(len(r[k]) for r in rows) for k in ("name", "family", "file"))
        print(f"{'name':<{name_w}}  {'family':<{family_w}}  {'file':<{file_w}}  {'size':>9}  {'cache':<{width}}  description")
        for r in rows:
            size = f"{r['bytes'] / 1e6:,.0f} MB" if r["bytes"] else "-"
            print(f"{r['name']:<{name_w}}  {r['family']:<{family_w}}  {r['file']:<{file_w}}  {size:>9}  "
                  f"{r['state']:<{width}}  {r['description']}")
        for r in rows:
            if r["bytes"] and not r["cached"] and r["state"] != "not downloaded":
                print(f"{r['name']}: {r['state']}; {_fix(r['name'], r['state'])}")
        if any(r["bytes"] and not r["cached"] for r in rows):
            print("a model whose file is not cached refuses to run; `clicksam download NAME` fetches it, "
                  "--random-weights runs it untrained (meaningless masks)")
        _print_published(published)
    return 1 if args.verify and damaged else 0
