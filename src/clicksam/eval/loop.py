"""The click protocol for one object: simulate a click, predict, measure, repeat (SPEC §7).

All ``max_clicks`` clicks are run (the mIoU@k curves need them). If the prediction has no
unclicked error pixel left, no further click can be simulated; the prediction then stays as it
is and its IoU is repeated for the remaining clicks (``clicks`` records how many were really made).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .clicker import Click, find_next_click, validate_gt
from .metrics import boundary_iou, iou
from .segmenter import Prompt, Segmenter

__all__ = ["ObjectResult", "evaluate_clicks"]


@dataclass
class ObjectResult:
    """The click protocol's outcome for one object.

    Attributes:
        object_id: the object's key.
        ious: IoU after clicks 1..max_clicks (length max_clicks).
        clicks: the clicks actually made, ``(x, y, positive)``.
        seconds: wall time of the click loop (segmenter steps, thresholding, simulator, metrics).
        boundary_ious: boundary IoU after each click, when requested.
    """

    object_id: str
    ious: list[float]
    clicks: list[Click]
    seconds: float
    boundary_ious: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The JSON line stored for this object."""
        record: dict[str, Any] = {
            "object_id": self.object_id,
            "ious": [float(v) for v in self.ious],
            "clicks": [c.to_list() for c in self.clicks],
            "seconds": float(self.seconds),
            "n_clicks": len(self.clicks),
        }
        if self.boundary_ious is not None:
            record["boundary_ious"] = [float(v) for v in self.boundary_ious]
        record.update(self.extra)
        return record


def evaluate_clicks(segmenter: Segmenter, gt: np.ndarray, object_id: str, max_clicks: int = 20,
                    rng: np.random.Generator | None = None, with_boundary: bool = False) -> ObjectResult:
    """Run the click protocol on one object of the image last given to ``segmenter.set_image``.

    Args:
        segmenter: the system under evaluation (its image already set).
        gt: HxW int ground truth (1 object, 0 background, -1 ignore) at the image's size.
        object_id: passed to ``segmenter.reset``.
        max_clicks: clicks per object (20 in the standard protocol).
        rng: None for the deterministic simulator, a Generator for random tie-breaks.
        with_boundary: also record the boundary IoU after each click.
    """
    validate_gt(gt)
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be >= 1, got {max_clicks}")
    shape = gt.shape
    segmenter.reset(object_id)
    prediction = np.zeros(shape, dtype=bool)
    clicks: list[Click] = []
    ious: list[float] = []
    boundaries: list[float] | None = [] if with_boundary else None
    state: Any = None
    start = time.perf_counter()
    for _ in range(max_clicks):
        click = find_next_click(gt, prediction, clicks, rng)
        if click is None:
            break
        clicks.append(click)
        output = segmenter.step(Prompt(tuple(clicks)), state)
        state = output.state
        prediction = segmenter.to_mask(output, shape)
        ious.append(iou(gt, prediction))
        if boundaries is not None:
            boundaries.append(boundary_iou(gt, prediction))
    seconds = time.perf_counter() - start
    if not ious:  # the first click always exists for a non-empty object; guard anyway
        raise ValueError(f"object {object_id!r} has no pixel to click (empty ground truth?)")
    missing = max_clicks - len(ious)
    ious.extend([ious[-1]] * missing)
    if boundaries is not None:
        boundaries.extend([boundaries[-1]] * missing)
    return ObjectResult(object_id, ious, clicks, seconds, boundaries)
