"""The one interface through which every evaluated system runs: SAM, its methods, baselines, oracles.

A :class:`Segmenter` sees an image once (``set_image``), starts each object with ``reset``, and
turns the prompts so far plus its own previous state into an HxW score map (``step``). The score
map is thresholded with ``segmenter.threshold`` (strictly greater): 0 for logits (SAM), 0.49 for
probabilities (RITM's protocol). The state is opaque to the evaluation loop; it is whatever the
segmenter needs on the next step (SAM: the previous low-res logits).

Oracles (:class:`ErodedGtOracle`, :class:`FixedMaskOracle`) look the ground truth up themselves
and give outputs whose NoC / NoF / mIoU can be computed by hand, to validate the loop and metrics.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from .clicker import Click

__all__ = ["Prompt", "SegmenterOutput", "Segmenter", "ErodedGtOracle", "FixedMaskOracle", "build_oracle"]


@dataclass(frozen=True)
class Prompt:
    """The prompts of one step.

    Attributes:
        clicks: every click so far, oldest first, ``(x, y)`` in original-image pixels.
        box: an optional box ``(x0, y0, x1, y1)`` (XYXY) in original-image pixels.
    """

    clicks: tuple[Click, ...] = ()
    box: tuple[float, float, float, float] | None = None


@dataclass
class SegmenterOutput:
    """One step's output.

    Attributes:
        scores: HxW float32 at the original image size; logits or probabilities (see ``threshold``).
        state: what the segmenter wants back as ``prev_state`` on the next step of the same object.
    """

    scores: np.ndarray
    state: Any = None


class Segmenter(ABC):
    """Interface of an interactive segmenter under evaluation."""

    #: short name used in reports
    name: str = "segmenter"
    #: ``mask = scores > threshold``; 0.0 for logits, 0.49 for probabilities
    threshold: float = 0.49

    @abstractmethod
    def set_image(self, image: np.ndarray, image_id: str) -> None:
        """Prepare for an HxWx3 uint8 RGB image (e.g. run the encoder); called once per image."""

    def reset(self, object_id: str | None = None) -> None:
        """Start a new object on the current image (``object_id`` is for oracles and logs only)."""

    @abstractmethod
    def step(self, prompt: Prompt, prev_state: Any = None) -> SegmenterOutput:
        """Predict from all prompts so far and the previous step's state (None on the first step)."""

    def to_mask(self, output: SegmenterOutput, shape: tuple[int, int] | None = None) -> np.ndarray:
        """HxW bool mask of ``output``; checks the score map's shape against ``shape`` (H, W)."""
        scores = np.asarray(output.scores)
        if scores.ndim != 2 or (shape is not None and scores.shape != tuple(shape)):
            raise RuntimeError(f"segmenter {self.name!r} returned scores of shape {scores.shape}, "
                               f"expected an HxW map of shape {shape}")
        return scores > self.threshold

    def describe(self) -> dict[str, Any]:
        """JSON-ready description recorded in the run's configuration (resume checks compare it)."""
        return {"segmenter": self.name, "threshold": self.threshold}


GtLookup = Callable[[str], np.ndarray]


def _morph(mask: np.ndarray, amount: int) -> np.ndarray:
    """Erode (amount > 0) or dilate (amount < 0) a bool mask with a 3x3 square, |amount| times.

    Erosion treats the image border as background, so a shape touching it shrinks from there too.
    """
    if amount == 0:
        return mask.copy()
    kernel = np.ones((3, 3), np.uint8)
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    if amount > 0:
        out = cv2.erode(padded, kernel, iterations=amount)
    else:
        out = cv2.dilate(padded, kernel, iterations=-amount)
    return out[1:-1, 1:-1].astype(bool)


class ErodedGtOracle(Segmenter):
    """The object mask eroded by a known amount that depends on the number of prompts.

    After the k-th click (1-based) the output is the object (``gt == 1``) eroded by
    ``schedule[min(k, len(schedule)) - 1]`` iterations of a 3x3 square (negative: dilated). A box
    prompt counts as one click. For a ``s x s`` square object away from the border, erosion ``e``
    gives IoU ``((s - 2e) / s)^2``.

    Args:
        gt_lookup: maps an object id to its HxW int ground truth.
        schedule: erosion per click; ``(2,)`` is a fixed erosion by 2.
        delay_s: seconds to sleep per step (to test SPC and interrupted runs).
    """

    name = "oracle-erode"
    threshold = 0.49

    def __init__(self, gt_lookup: GtLookup, schedule: Sequence[int] = (0,), delay_s: float = 0.0) -> None:
        if not schedule:
            raise ValueError("the erosion schedule needs at least one value")
        self.gt_lookup = gt_lookup
        self.schedule = tuple(int(v) for v in schedule)
        self.delay_s = float(delay_s)
        self._gt: np.ndarray | None = None
        self._image_shape: tuple[int, int] | None = None

    def set_image(self, image: np.ndarray, image_id: str) -> None:
        self._image_shape = tuple(image.shape[:2])  # type: ignore[assignment]

    def reset(self, object_id: str | None = None) -> None:
        if object_id is None:
            raise ValueError("an oracle segmenter needs the object id to look up its ground truth")
        self._gt = self.gt_lookup(object_id)

    def step(self, prompt: Prompt, prev_state: Any = None) -> SegmenterOutput:
        if self._gt is None:
            raise RuntimeError("call reset(object_id) before step()")
        if self.delay_s:
            time.sleep(self.delay_s)
        count = len(prompt.clicks) + (prompt.box is not None)
        amount = self.schedule[min(max(count, 1), len(self.schedule)) - 1]
        mask = _morph(self._gt == 1, amount)
        return SegmenterOutput(mask.astype(np.float32), state=count)

    def describe(self) -> dict[str, Any]:
        return {"segmenter": self.name, "threshold": self.threshold, "schedule": list(self.schedule)}


class FixedMaskOracle(Segmenter):
    """Always the same mask, whatever the prompts: ``empty``, ``full``, or a given HxW bool array."""

    threshold = 0.49

    def __init__(self, kind: str = "empty", mask: np.ndarray | None = None) -> None:
        if kind not in ("empty", "full", "mask"):
            raise ValueError(f"fixed oracle kind must be 'empty', 'full' or 'mask', got {kind!r}")
        if (kind == "mask") != (mask is not None):
            raise ValueError("give a mask exactly when kind='mask'")
        self.kind = kind
        self.mask = None if mask is None else np.asarray(mask, dtype=bool)
        self.name = f"oracle-{kind}"
        self._shape: tuple[int, int] | None = None

    def set_image(self, image: np.ndarray, image_id: str) -> None:
        self._shape = tuple(image.shape[:2])  # type: ignore[assignment]

    def step(self, prompt: Prompt, prev_state: Any = None) -> SegmenterOutput:
        if self._shape is None:
            raise RuntimeError("call set_image() before step()")
        if self.mask is not None:
            if self.mask.shape != self._shape:
                raise RuntimeError(f"fixed mask shape {self.mask.shape} differs from the image's {self._shape}")
            return SegmenterOutput(self.mask.astype(np.float32))
        value = 1.0 if self.kind == "full" else 0.0
        return SegmenterOutput(np.full(self._shape, value, dtype=np.float32))

    def describe(self) -> dict[str, Any]:
        return {"segmenter": self.name, "threshold": self.threshold}


def build_oracle(spec: str, gt_lookup: GtLookup) -> Segmenter:
    """An oracle from a command-line spec.

    ``erode:E1,E2,...[@DELAY]`` (erosion schedule per click, optional seconds of delay per step),
    ``empty`` or ``full``.
    """
    kind, _, rest = spec.partition(":")
    if kind in ("empty", "full") and not rest:
        return FixedMaskOracle(kind)
    if kind == "erode" and rest:
        values, _, delay = rest.partition("@")
        try:
            schedule = [int(v) for v in values.split(",")]
            return ErodedGtOracle(gt_lookup, schedule, float(delay) if delay else 0.0)
        except ValueError as exc:
            raise ValueError(f"bad oracle spec {spec!r}: {exc}") from exc
    raise ValueError(f"unknown oracle spec {spec!r}; use 'erode:E1,E2,...[@SECONDS]', 'empty' or 'full'")
