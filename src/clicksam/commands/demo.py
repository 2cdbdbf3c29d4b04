"""``clicksam demo``: segment the example photos with scripted clicks; write an overlay gallery
and a per-click latency table."""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from clicksam.commands.common import add_model_arguments, load_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"  # package data: there in an installed wheel too


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--examples", type=Path, default=EXAMPLES, help="folder with the photos and clicks.json")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")


def run(args: argparse.Namespace) -> int:
    from clicksam.cache import EmbeddingCache
    from clicksam.images import read_image
    from clicksam.predictor import SamPredictor
    from clicksam.session import InteractiveSession
    from clicksam.visualize import gallery, overlay_mask, save_png

    script_path = args.examples / "clicks.json"
    if not script_path.is_file():
        raise FileNotFoundError(f"{script_path} not found; pass --examples DIR with photos and a clicks.json")
    script = {k: v for k, v in json.loads(script_path.read_text()).items() if not k.startswith("_")}
    try:
        model = load_model(args, download=True)
    except RuntimeError as exc:
        print(f"clicksam demo: {exc}")
        print("(to try the pipeline without weights: clicksam demo --model tiny, or add --random-weights)")
        return 2
    predictor = SamPredictor(model, cache=EmbeddingCache(args.out / "embeddings"))
    tiles, titles, rows = [], [], []
    for filename, spec in script.items():
        image = read_image(args.examples / filename)
        start = time.perf_counter()
        predictor.set_image(image)
        encode_s = time.perf_counter() - start
        session = InteractiveSession(predictor, method=args.method)
        latencies = []
        for x, y, label in spec["clicks"]:
            session.add_click(x, y, positive=bool(label))
            latencies.append(session.last_latency_s)
        tiles.append(overlay_mask(image, session.mask, session.clicks))
        titles.append(f"{filename}: {len(latencies)} clicks, IoU pred {session.score:.2f}")
        rows.append((filename, encode_s, predictor.last_encode_cached, latencies))
    args.out.mkdir(parents=True, exist_ok=True)
    save_png(args.out / "gallery.png", gallery(tiles, titles))
    lines = [
        f"# clicksam demo: model {args.model}, method {session.method}",
        "",
        "| image | encoder (s) | clicks | per-click median (s) | per-click max (s) |",
        "|---|---|---|---|---|",
    ]
    for filename, encode_s, cached, lat in rows:
        enc = f"{encode_s:.2f}" + (" (cached)" if cached else "")
        lines.append(f"| {filename} | {enc} | {len(lat)} | {statistics.median(lat):.3f} | {max(lat):.3f} |")
    table = "\n".join(lines) + "\n"
    (args.out / "latency.md").write_text(table)
    print(table)
    print(f"gallery: {args.out / 'gallery.png'}\nlatency table: {args.out / 'latency.md'}")
    return 0
