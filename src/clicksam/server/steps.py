"""The steps of an object's history: prompts for the model, brush strokes, resets.

Coordinates are pixels of the original image: (x, y) with pixel ``(i, j)`` covering
``[i, i + 1) x [j, j + 1)``. Every step is compact: a stroke keeps its polyline and the pixels
it changed (COCO RLE), a reset keeps the mask it cleared (COCO RLE), never full-size arrays.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from clicksam.prompts import Click

__all__ = ["Action", "Stroke", "Reset", "Step", "step_from_dict", "current_steps", "PROMPT_KINDS",
           "STROKE_MODES", "MAX_STROKE_POINTS", "MIN_BRUSH_RADIUS", "MAX_BRUSH_RADIUS"]

PROMPT_KINDS = ("click", "box")
STROKE_MODES = ("paint", "erase")
MAX_STROKE_POINTS = 2000
MIN_BRUSH_RADIUS = 0.5  # a stroke paints at least the pixel under each of its points
MAX_BRUSH_RADIUS = 500.0


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _state_ref(value: Any) -> Optional[dict[str, Any]]:
    """A step's stored-state reference as read from a file (see :mod:`clicksam.server.states`);
    a malformed one is dropped: it only saves a decode, the step is recomputed without it."""
    if isinstance(value, dict) and isinstance(value.get("key"), str) and isinstance(value.get("tensors"), dict):
        return value
    return None


def _rle_or_none(value: Any, what: str) -> Optional[dict[str, Any]]:
    if value is not None and not (isinstance(value, dict) and "size" in value and "counts" in value):
        raise ValueError(f"{what} must be COCO RLE or null")
    return value


@dataclass(frozen=True)
class Action:
    """A prompt for the model: a click (``x``, ``y``, ``positive``) or a box (``box`` = XYXY).

    ``state`` references the stored result of the step (what is needed to continue from it, see
    :mod:`clicksam.server.states`), or None; it is a cache, not part of the step's identity.
    """

    kind: str
    x: float = 0.0
    y: float = 0.0
    positive: bool = True
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    state: Optional[dict[str, Any]] = field(default=None, compare=False)

    @property
    def prompt(self) -> Union[Click, tuple[float, float, float, float]]:
        """What the step gives a session: a :class:`clicksam.Click`, or the box."""
        return Click(self.x, self.y, self.positive) if self.kind == "click" else self.box

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data: dict[str, Any] = ({"kind": "click", "x": self.x, "y": self.y, "positive": self.positive}
                                if self.kind == "click" else {"kind": "box", "box": list(self.box)})
        if self.state is not None:
            data["state"] = self.state
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "Action":
        """Parse and validate; raises ``ValueError``."""
        if not isinstance(data, dict) or data.get("kind") not in PROMPT_KINDS:
            raise ValueError(f"an action must be a dict with kind 'click' or 'box', got {data!r}")
        state = _state_ref(data.get("state"))
        if data["kind"] == "click":
            return cls("click", _number(data.get("x"), "x"), _number(data.get("y"), "y"),
                       bool(data.get("positive", True)), state=state)
        box = data.get("box")
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise ValueError(f"a box action needs 'box': [x0, y0, x1, y1], got {box!r}")
        return cls("box", box=tuple(_number(v, "box coordinate") for v in box), state=state)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Stroke:
    """A brush stroke: every pixel whose centre lies within ``radius`` of the polyline ``points``
    (XY image pixels) is painted into the mask (``mode="paint"``) or erased from it.

    ``changed`` is the COCO RLE of the pixels the stroke flipped, so undo and redo are exact
    without the model (the mask XOR ``changed``).
    """

    mode: str
    radius: float
    points: tuple[tuple[float, float], ...]
    changed: Optional[dict[str, Any]] = None
    kind: str = "stroke"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": "stroke", "mode": self.mode, "radius": self.radius,
                "points": [list(p) for p in self.points], "changed": self.changed}

    @classmethod
    def from_dict(cls, data: Any) -> "Stroke":
        """Parse and validate; raises ``ValueError``."""
        if not isinstance(data, dict) or data.get("mode") not in STROKE_MODES:
            raise ValueError(f"a stroke needs mode 'paint' or 'erase', got {data!r:.200}")
        radius = _number(data.get("radius"), "stroke radius")
        if not MIN_BRUSH_RADIUS <= radius <= MAX_BRUSH_RADIUS:
            raise ValueError(f"stroke radius must be {MIN_BRUSH_RADIUS:g}-{MAX_BRUSH_RADIUS:g} pixels, got {radius:g}")
        points = data.get("points")
        if not isinstance(points, list) or not 1 <= len(points) <= MAX_STROKE_POINTS or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 for p in points):
            raise ValueError(f"a stroke needs 1-{MAX_STROKE_POINTS} points [x, y]")
        parsed = tuple((_number(p[0], "stroke x"), _number(p[1], "stroke y")) for p in points)
        return cls(str(data["mode"]), radius, parsed, _rle_or_none(data.get("changed"), "stroke 'changed'"))


@dataclass(frozen=True)
class Reset:
    """Clearing the object: the prompts and strokes before it no longer count. ``mask`` and
    ``score`` keep what it cleared, so undoing the reset shows the object again at once."""

    mask: Optional[dict[str, Any]] = None
    score: Optional[float] = None
    kind: str = "reset"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": "reset", "mask": self.mask, "score": self.score}

    @classmethod
    def from_dict(cls, data: Any) -> "Reset":
        """Parse and validate; raises ``ValueError``."""
        score = data.get("score")
        return cls(_rle_or_none(data.get("mask"), "reset 'mask'"), None if score is None else _number(score, "score"))


Step = Union[Action, Stroke, Reset]


def step_from_dict(data: Any) -> Step:
    """Parse any step by its ``kind``; raises ``ValueError``."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "stroke":
        return Stroke.from_dict(data)
    if kind == "reset":
        return Reset.from_dict(data)
    if kind in PROMPT_KINDS:
        return Action.from_dict(data)
    raise ValueError(f"a step must be a dict with kind 'click', 'box', 'stroke' or 'reset', got {data!r:.200}")


def current_steps(steps: list[Step]) -> list[Step]:
    """The steps that make the object now: those after its last reset."""
    last_reset = max((i for i, step in enumerate(steps) if isinstance(step, Reset)), default=-1)
    return steps[last_reset + 1:]
