"""Bytes the annotator sends for a large photo: the full-size PNG it sent before, against the display copy
and the full-resolution tiles a zoomed-in view fetches now.

The photo is ``--width`` x ``--height`` (8000 x 6000): the example photo upscaled (bicubic) with
Gaussian noise of ``--noise`` grey levels (sensor grain; without it an upscaled picture compresses
far better than a real photo), saved as a JPEG of quality 92, as a camera would. Measured:

- ``before``: what ``GET /api/image`` sent until this change, reproduced exactly: the decoded
  image re-encoded as a PNG by OpenCV at compression level 1;
- ``after``: the display copy (``GET /api/image``), and the tiles (``GET /api/tile``) of a
  ``--view`` device-pixel view at 100 % and at 50 % zoom in the photo's centre.

    python benchmarks/web_display.py [--out benchmarks/results/web_display_<time>.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _photo(path: Path, width: int, height: int, noise: float) -> None:
    from PIL import Image

    example = Path(__file__).resolve().parents[1] / "src/clicksam/examples/coffee.jpg"
    big = np.asarray(Image.open(example).convert("RGB").resize((width, height), Image.Resampling.BICUBIC))
    rng = np.random.default_rng(0)
    grain = rng.normal(0.0, noise, big.shape).astype(np.float32)
    Image.fromarray(np.clip(big + grain, 0, 255).astype(np.uint8)).save(path, quality=92)


def _view_tiles(display: Any, name: str, info: Any, level: int, view: tuple[int, int]) -> dict[str, Any]:
    """Bytes of the tiles covering a ``view`` (device pixels) centred on the image at zoom 1 / 2**level."""
    from clicksam.server.display import TILE_SIZE

    span = TILE_SIZE * 2 ** level  # image pixels per tile
    width, height = view[0] * 2 ** level, view[1] * 2 ** level  # image pixels shown
    x0, y0 = (info.width - width) // 2, (info.height - height) // 2
    tiles = [(col, row) for row in range(y0 // span, math.ceil((y0 + height) / span))
             for col in range(x0 // span, math.ceil((x0 + width) / span))]
    started = time.perf_counter()
    sizes = [len(display.tile(name, level, col, row)[0]) for col, row in tiles]
    return {"zoom": 1 / 2 ** level, "level": level, "tiles": len(tiles), "bytes": sum(sizes),
            "seconds": round(time.perf_counter() - started, 2)}


def run(width: int, height: int, noise: float, view: tuple[int, int]) -> dict[str, Any]:
    import cv2

    from clicksam.images import read_image
    from clicksam.server.display import DisplayImages
    from clicksam.server.images import ImageFolder

    work = Path(tempfile.mkdtemp(prefix="clicksam_web_display_"))
    try:
        _photo(work / "photo.jpg", width, height, noise)
        started = time.perf_counter()
        pixels = read_image(work / "photo.jpg")
        ok, png = cv2.imencode(".png", np.ascontiguousarray(pixels[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        assert ok
        before_s = time.perf_counter() - started
        display = DisplayImages(ImageFolder(work))
        started = time.perf_counter()
        info = display.info("photo.jpg")
        copy, media = display.display("photo.jpg")
        after_s = time.perf_counter() - started
        zoomed = [_view_tiles(display, "photo.jpg", info, level, view) for level in range(info.levels)]
        return {
            "benchmark": "web_display", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "photo": {"width": width, "height": height, "noise": noise, "file_bytes": (work / "photo.jpg").stat().st_size},
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "before": {"what": "full-size PNG (OpenCV, compression 1)", "bytes": len(png), "seconds": round(before_s, 2)},
            "after": {"display_copy": {"media_type": media, "width": info.display_width, "height": info.display_height,
                                       "bytes": len(copy), "seconds": round(after_s, 2)},
                      "view": list(view), "zoomed_in": zoomed},
            "before_over_display_copy": round(len(png) / len(copy), 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=8000)
    parser.add_argument("--height", type=int, default=6000)
    parser.add_argument("--noise", type=float, default=3.0)
    parser.add_argument("--view", type=int, nargs=2, default=(1600, 1000), metavar=("W", "H"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.width, args.height, args.noise, tuple(args.view))
    out = args.out or Path(__file__).resolve().parent / "results" / \
        f"web_display_{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
