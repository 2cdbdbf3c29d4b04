"""``clicksam segment IMAGE --click X,Y[,LABEL] ... [--box X0,Y0,X1,Y1] -o mask.png``."""
from __future__ import annotations

import argparse
from pathlib import Path

from clicksam.commands.common import add_model_arguments, load_model, parse_xy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="image file")
    add_model_arguments(parser)
    parser.add_argument("--click", action="append", default=[], metavar="X,Y[,LABEL]",
                        help="a click in image pixels (x right, y down, as the image is shown); LABEL 1 positive "
                             "(default) or 0 negative; repeat, in order")
    parser.add_argument("--box", metavar="X0,Y0,X1,Y1", help="a box in image pixels")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the mask, a .png file (0/255)")
    parser.add_argument("--overlay", type=Path, help="also write an overlay, a .png file")


def check_png_output(path: Path, option: str) -> None:
    """Refuse, before any work, an output that is a folder or not a ``.png`` name (masks are written
    as lossless PNG: a JPEG would blur the 0/255 values)."""
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name such as {path / 'mask.png'}")
    if path.suffix.lower() != ".png":
        raise ValueError(f"{option} {path}: the file is written as PNG, so its name must end in .png")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from clicksam.images import read_image
    from clicksam.predictor import SamPredictor
    from clicksam.session import InteractiveSession
    from clicksam.visualize import overlay_mask, save_png

    if not args.click and not args.box:
        raise ValueError("give at least one --click X,Y[,LABEL] or a --box X0,Y0,X1,Y1")
    check_png_output(args.output, "-o")
    if args.overlay is not None:
        check_png_output(args.overlay, "--overlay")
    clicks = []
    for text in args.click:
        parts = text.split(",")
        x, y = parse_xy(",".join(parts[:2]), "--click", 2)
        label = parts[2].strip() if len(parts) > 2 else "1"
        if label not in ("0", "1") or len(parts) > 3:
            raise ValueError(f"--click {text!r}: LABEL must be 1 (positive) or 0 (negative)")
        clicks.append((x, y, label == "1"))
    image = read_image(args.image)
    predictor = SamPredictor(load_model(args))
    predictor.set_image(image)
    session = InteractiveSession(predictor, method=args.method)
    if args.box:
        session.add_box(*parse_xy(args.box, "--box", 4))
    for x, y, positive in clicks:
        session.add_click(x, y, positive)
    mask = session.mask
    save_png(args.output, (mask.astype(np.uint8) * 255))
    print(f"{args.output}: {int(mask.sum())} pixels ({mask.mean():.1%} of the image), predicted IoU {session.score:.3f}")
    if args.overlay:
        save_png(args.overlay, overlay_mask(image, mask, session.clicks, session.box))
        print(f"{args.overlay}: overlay")
    return 0
