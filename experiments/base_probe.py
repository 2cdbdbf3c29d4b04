"""How good is the cached base? GT-box and one-click mIoU at the original image size.

For each scene of a family (``--family``, 1000 = held-out, 0 = training): the tight box
(single-mask output), and one positive click at the object's most interior pixel, decoded both
as SAM's best of three masks and with the single-mask token. Takes the base arguments of
``common.py`` (the same flags pick the same cached base) and trains it first if it is missing.

    .venv/bin/python experiments/base_probe.py --family 3000 --count 60
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from clicksam import SamPredictor  # noqa: E402
from clicksam.eval.metrics import iou  # noqa: E402
from clicksam.train.synthetic import make_scene  # noqa: E402


def probe(model, family: int, count: int) -> dict[str, float]:
    predictor = SamPredictor(model)
    scores: dict[str, list[float]] = {"gt_box": [], "point_best_of_3": [], "point_single": []}
    for i in range(count):
        scene = make_scene(family, i)
        gt = scene.mask
        predictor.set_image(scene.image)
        ys, xs = np.nonzero(gt)
        masks, _, _ = predictor.predict(box=np.array([xs.min(), ys.min(), xs.max(), ys.max()]), multimask_output=False)
        scores["gt_box"].append(iou(gt, masks[0]))
        y, x = np.unravel_index(ndimage.distance_transform_edt(gt).argmax(), gt.shape)
        click = {"point_coords": np.array([[x, y]]), "point_labels": np.array([1])}
        masks, quality, _ = predictor.predict(**click, multimask_output=True)
        scores["point_best_of_3"].append(iou(gt, masks[quality.argmax()]))
        masks, _, _ = predictor.predict(**click, multimask_output=False)
        scores["point_single"].append(iou(gt, masks[0]))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_arguments(parser, "unused", 0, 0)
    parser.add_argument("--family", type=int, default=common.TEST_SEED, help="scene family (0 = training scenes)")
    parser.add_argument("--count", type=int, default=60)
    args = parser.parse_args(argv)
    ctx = common.prepare(args)
    model, info = ctx.base, ctx.base_info
    with torch.inference_mode():
        result = probe(model, args.family, args.count)
    print(f"base ({info['steps']} steps), family {args.family}, {args.count} scenes: "
          + ", ".join(f"{k} mIoU {v:.3f}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
