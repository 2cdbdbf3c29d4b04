"""``clicksam export DIR --format coco|png|polygons``: export the annotator's saved annotations."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "DEFAULT_OUTPUTS"]

DEFAULT_OUTPUTS = {"coco": "annotations_coco.json", "png": "labels_png", "polygons": "annotations_polygons.json"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksam export``."""
    parser.add_argument("images", type=Path, help="the folder that was served with clicksam serve --images")
    parser.add_argument("--format", required=True, choices=sorted(DEFAULT_OUTPUTS),
                        help="coco: COCO JSON with RLE masks; png: label-map PNGs; polygons: polygons with holes")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (coco, polygons) or folder (png); default "
                             + ", ".join(f"{k}: ./{v}" for k, v in DEFAULT_OUTPUTS.items()))
    parser.add_argument("--annotations", type=Path, default=None,
                        help="annotation folder (default IMAGES/.clicksam/annotations)")


def run(args: argparse.Namespace) -> int:
    """Write the export; returns 0, or 1 when there was nothing to export or a corrupt annotation
    file was skipped (each one is named on stderr; the others are exported)."""
    from clicksam.server.export import export_to
    from clicksam.server.images import ImageFolder
    from clicksam.server.store import AnnotationStore

    folder = ImageFolder(args.images)
    store_dir = args.annotations if args.annotations is not None else folder.root / ".clicksam" / "annotations"
    if not Path(store_dir).is_dir():
        raise FileNotFoundError(f"no annotations found: {store_dir} does not exist")
    store = AnnotationStore(store_dir, images=folder.root)
    listed = set(folder.names)
    annotated = store.images()
    images = [name for name in annotated if name in listed]
    for name in annotated:
        if name not in listed:
            print(f"warning: skipping annotations of {name!r}: the image is no longer in {folder.root}",
                  file=sys.stderr)
    if not images:
        print(f"nothing to export: no annotated images in {store.root}", file=sys.stderr)
        return 1
    out = args.out if args.out is not None else Path(DEFAULT_OUTPUTS[args.format])
    skipped: list[str] = []
    written = export_to(store, args.format, out, images, skipped)
    for warning in skipped:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"exported {len(images) - len(skipped)} image(s) as {args.format} to {written}"
          + (f"; {len(skipped)} corrupt annotation file(s) skipped" if skipped else ""))
    return 1 if skipped else 0
