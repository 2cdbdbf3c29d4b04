"""Per-image annotation files, written atomically on every change.

One JSON file per image under the store folder (``<store>/<image name>.json``)::

    {"format": "clicksam-annotations", "version": 1, "image": "a/b.jpg", "width": W, "height": H,
     "next_id": 3, "objects": [{"id": 1, "label": "cat", "method": "focsam",
       "actions": [{"kind": "click", "x": 10.5, "y": 20, "positive": true},
                   {"kind": "box", "box": [x0, y0, x1, y1]}],
       "redo": [...], "clicks": [[x, y, positive], ...], "box": [x0, y0, x1, y1] | null,
       "mask": COCO RLE | null, "score": 0.97 | null}]}

``actions`` (the undo history, oldest first) and ``redo`` (the redo stack, next redo last) are
the source of truth: replaying them through a session recomputes the masks. ``mask`` keeps the
last mask as COCO RLE so a restarted server shows it at once; ``clicks`` and ``box`` are derived
copies for readers of the file.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from clicksam.io.atomic import atomic_write_json

__all__ = ["Action", "ObjectRecord", "ImageAnnotation", "AnnotationStore"]

FORMAT = "clicksam-annotations"
VERSION = 1


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Action:
    """One prompt change: a click (``x``, ``y``, ``positive``) or a box (``box`` = XYXY)."""

    kind: str
    x: float = 0.0
    y: float = 0.0
    positive: bool = True
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        if self.kind == "click":
            return {"kind": "click", "x": self.x, "y": self.y, "positive": self.positive}
        return {"kind": "box", "box": list(self.box)}

    @classmethod
    def from_dict(cls, data: Any) -> "Action":
        """Parse and validate; raises ``ValueError``."""
        if not isinstance(data, dict) or data.get("kind") not in ("click", "box"):
            raise ValueError(f"an action must be a dict with kind 'click' or 'box', got {data!r}")
        if data["kind"] == "click":
            return cls("click", _number(data.get("x"), "x"), _number(data.get("y"), "y"),
                       bool(data.get("positive", True)))
        box = data.get("box")
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise ValueError(f"a box action needs 'box': [x0, y0, x1, y1], got {box!r}")
        return cls("box", box=tuple(_number(v, "box coordinate") for v in box))  # type: ignore[arg-type]


@dataclass
class ObjectRecord:
    """One annotated object: its label, method, prompt history and last mask (COCO RLE)."""

    id: int
    label: str
    method: str
    actions: list[Action] = field(default_factory=list)
    redo: list[Action] = field(default_factory=list)
    mask: Optional[dict[str, Any]] = None
    score: Optional[float] = None

    @property
    def clicks(self) -> list[list[Any]]:
        """The clicks of the current history as ``[x, y, positive]``."""
        return [[a.x, a.y, a.positive] for a in self.actions if a.kind == "click"]

    @property
    def box(self) -> Optional[list[float]]:
        """The current box (the last one in the history), or ``None``."""
        boxes = [a.box for a in self.actions if a.kind == "box"]
        return list(boxes[-1]) if boxes else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see the module docstring)."""
        return {"id": self.id, "label": self.label, "method": self.method,
                "actions": [a.to_dict() for a in self.actions], "redo": [a.to_dict() for a in self.redo],
                "clicks": self.clicks, "box": self.box, "mask": self.mask, "score": self.score}

    @classmethod
    def from_dict(cls, data: Any) -> "ObjectRecord":
        """Parse and validate; raises ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError("an object must be a dict")
        oid, label, method = data.get("id"), data.get("label"), data.get("method")
        if not isinstance(oid, int) or isinstance(oid, bool) or oid < 1:
            raise ValueError(f"object id must be a positive int, got {oid!r}")
        if not isinstance(label, str) or not isinstance(method, str):
            raise ValueError(f"object {oid}: label and method must be strings")
        mask = data.get("mask")
        if mask is not None and not (isinstance(mask, dict) and "size" in mask and "counts" in mask):
            raise ValueError(f"object {oid}: mask must be COCO RLE or null")
        score = data.get("score")
        return cls(oid, label, method, [Action.from_dict(a) for a in data.get("actions", [])],
                   [Action.from_dict(a) for a in data.get("redo", [])], mask,
                   None if score is None else _number(score, "score"))


@dataclass
class ImageAnnotation:
    """All objects of one image."""

    image: str
    width: int
    height: int
    objects: list[ObjectRecord] = field(default_factory=list)
    next_id: int = 1

    def find(self, object_id: int) -> Optional[ObjectRecord]:
        """The object with this id, or ``None``."""
        return next((o for o in self.objects if o.id == object_id), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see the module docstring)."""
        return {"format": FORMAT, "version": VERSION, "image": self.image, "width": self.width,
                "height": self.height, "next_id": self.next_id,
                "objects": [o.to_dict() for o in self.objects]}

    @classmethod
    def from_dict(cls, data: Any) -> "ImageAnnotation":
        """Parse and validate; raises ``ValueError``."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a clicksam annotation file (format must be {FORMAT!r})")
        if data.get("version") != VERSION:
            raise ValueError(f"unsupported annotation version {data.get('version')!r} (expected {VERSION})")
        width, height = data.get("width"), data.get("height")
        if not all(isinstance(v, int) and v > 0 for v in (width, height)):
            raise ValueError("width and height must be positive ints")
        objects = [ObjectRecord.from_dict(o) for o in data.get("objects", [])]
        next_id = max([int(data.get("next_id", 1))] + [o.id + 1 for o in objects])
        return cls(str(data.get("image", "")), width, height, objects, next_id)


class AnnotationStore:
    """Reads and atomically writes :class:`ImageAnnotation` files under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, image: str) -> Path:
        """The annotation file of an image name (already validated by the image folder)."""
        path = (self.root / f"{image}.json").resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"image name {image!r} leaves the annotation folder")
        return path

    def load(self, image: str) -> Optional[ImageAnnotation]:
        """The saved annotation of ``image``, or ``None``; ``ValueError`` naming a corrupt file."""
        path = self.path_for(image)
        if not path.is_file():
            return None
        try:
            annotation = ImageAnnotation.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"corrupt annotation file {path}: {exc}") from exc
        annotation.image = image
        return annotation

    def save(self, annotation: ImageAnnotation) -> Path:
        """Write an annotation atomically (temporary file + rename)."""
        return atomic_write_json(self.path_for(annotation.image), annotation.to_dict())

    def images(self) -> list[str]:
        """Names of the images that have an annotation file."""
        return sorted(p.relative_to(self.root).as_posix()[:-5] for p in self.root.rglob("*.json")
                      if not p.name.startswith("."))
