"""Per-image annotation files, written atomically on every change.

One JSON file per image under the store folder (``<store>/<image name>.json``), version 2::

    {"format": "clicksam-annotations", "version": 2, "image": "a/b.jpg", "width": W, "height": H,
     "next_id": 3, "review": "todo" | "in_progress" | "done" | "needs_review",
     "objects": [{"id": 1, "class": 2, "method": "focsam", "hidden": false, "locked": false, "solo": false,
       "actions": [{"kind": "click", "x": 10.5, "y": 20, "positive": true, "state": {...stored result}},
                   {"kind": "box", "box": [x0, y0, x1, y1]},
                   {"kind": "stroke", "mode": "paint", "radius": 4, "points": [[x, y], ...], "changed": RLE},
                   {"kind": "reset", "mask": RLE | null, "score": 0.9 | null}],
       "redo": [...], "clicks": [[x, y, positive], ...], "box": [x0, y0, x1, y1] | null,
       "mask": COCO RLE | null, "score": 0.97 | null}],
     "deleted": [{"index": 0, "object": {...an object as above...}}],
     "history": [[1, "step"], [2, "step"], [2, "delete"]], "future": [[1, "step"]]}

``actions`` (an object's undo history, oldest first) and ``redo`` (its redo stack, next redo
last) are the source of truth: replaying the prompts after the last reset through a session and
putting the strokes on top recomputes the mask (see :mod:`clicksam.server.brush`); a prompt's
``state`` refers to its stored result, so that the session is rebuilt without the replay
(:mod:`clicksam.server.states`). ``mask`` keeps
the last mask as COCO RLE so a restarted server shows it at once; ``clicks`` and ``box`` are
derived copies for readers of the file. ``class`` is an id of the folder's class list
(:mod:`clicksam.server.classes`). ``history`` orders the steps of all objects of the image (undo
takes the last one) and ``future`` the undone ones (redo takes the last one); a ``delete`` entry
is an object moved to ``deleted``, from where undo puts it back at its ``index``.

Version-1 files (free-text ``label`` per object, no review state or image history, made on the
stored pixels of the image) are migrated when read: labels become classes, the image history lists
each object's steps in object order, and an annotation of a photo with an EXIF orientation tag is
turned as the photo is shown now (:mod:`clicksam.server.orientation`); the old file is kept as
``<image>.json.v1.bak`` and the new one written in its place.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from clicksam.io.atomic import atomic_write_bytes, atomic_write_json
from clicksam.server.classes import ClassList
from clicksam.server.steps import Action, Reset, Step, Stroke, current_steps, step_from_dict

__all__ = ["ObjectRecord", "ImageAnnotation", "AnnotationStore", "DeletedObject", "REVIEW_STATES",
           "STEP", "DELETE", "VERSION", "CLASSES_FILE", "check_masks"]

FORMAT = "clicksam-annotations"
VERSION = 2
CLASSES_FILE = ".classes.json"
REVIEW_STATES = ("todo", "in_progress", "done", "needs_review")
STEP, DELETE = "step", "delete"  # kinds of image history entries


def _flag(data: dict[str, Any], key: str, oid: Any) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"object {oid}: {key} must be true or false, got {value!r}")
    return value


@dataclass
class ObjectRecord:
    """One annotated object: class, method, display flags, history (steps) and last mask (COCO RLE)."""

    id: int
    class_id: int
    method: str
    actions: list[Step] = field(default_factory=list)
    redo: list[Step] = field(default_factory=list)
    mask: Optional[dict[str, Any]] = None
    score: Optional[float] = None
    hidden: bool = False
    locked: bool = False
    solo: bool = False

    @property
    def current(self) -> list[Step]:
        """The steps that make the object now (after its last reset)."""
        return current_steps(self.actions)

    @property
    def clicks(self) -> list[list[Any]]:
        """The current clicks as ``[x, y, positive]``."""
        return [[a.x, a.y, a.positive] for a in self.current if isinstance(a, Action) and a.kind == "click"]

    @property
    def box(self) -> Optional[list[float]]:
        """The current box (the last one since the last reset), or ``None``."""
        boxes = [a.box for a in self.current if isinstance(a, Action) and a.kind == "box"]
        return list(boxes[-1]) if boxes else None

    @property
    def strokes(self) -> int:
        """How many brush strokes count now."""
        return sum(isinstance(a, Stroke) for a in self.current)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see the module docstring)."""
        return {"id": self.id, "class": self.class_id, "method": self.method, "hidden": self.hidden,
                "locked": self.locked, "solo": self.solo, "actions": [a.to_dict() for a in self.actions],
                "redo": [a.to_dict() for a in self.redo], "clicks": self.clicks, "box": self.box,
                "mask": self.mask, "score": self.score}

    @classmethod
    def from_dict(cls, data: Any) -> "ObjectRecord":
        """Parse and validate; raises ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError("an object must be a dict")
        oid, class_id, method = data.get("id"), data.get("class"), data.get("method")
        if not isinstance(oid, int) or isinstance(oid, bool) or oid < 1:
            raise ValueError(f"object id must be a positive int, got {oid!r}")
        if not isinstance(class_id, int) or isinstance(class_id, bool) or class_id < 1:
            raise ValueError(f"object {oid}: class must be a positive int (a class id), got {class_id!r}")
        if not isinstance(method, str):
            raise ValueError(f"object {oid}: method must be a string")
        mask = data.get("mask")
        if mask is not None and not (isinstance(mask, dict) and "size" in mask and "counts" in mask):
            raise ValueError(f"object {oid}: mask must be COCO RLE or null")
        score = data.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise ValueError(f"object {oid}: score must be a number or null")
        return cls(oid, class_id, method, [step_from_dict(a) for a in data.get("actions", [])],
                   [step_from_dict(a) for a in data.get("redo", [])], mask,
                   None if score is None else float(score),
                   _flag(data, "hidden", oid), _flag(data, "locked", oid), _flag(data, "solo", oid))


@dataclass
class DeletedObject:
    """An object removed by a delete step, kept so that undo can put it back at ``index``."""

    index: int
    record: ObjectRecord


@dataclass
class ImageAnnotation:
    """All objects of one image, its review state and its image-level history."""

    image: str
    width: int
    height: int
    objects: list[ObjectRecord] = field(default_factory=list)
    next_id: int = 1
    review: str = "todo"
    deleted: list[DeletedObject] = field(default_factory=list)
    history: list[tuple[int, str]] = field(default_factory=list)
    future: list[tuple[int, str]] = field(default_factory=list)

    def find(self, object_id: int) -> Optional[ObjectRecord]:
        """The live object with this id, or ``None``."""
        return next((o for o in self.objects if o.id == object_id), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see the module docstring)."""
        return {"format": FORMAT, "version": VERSION, "image": self.image, "width": self.width,
                "height": self.height, "next_id": self.next_id, "review": self.review,
                "objects": [o.to_dict() for o in self.objects],
                "deleted": [{"index": d.index, "object": d.record.to_dict()} for d in self.deleted],
                "history": [list(e) for e in self.history], "future": [list(e) for e in self.future]}

    @classmethod
    def from_dict(cls, data: Any) -> "ImageAnnotation":
        """Parse and validate a version-2 dict; raises ``ValueError``."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a clicksam annotation file (format must be {FORMAT!r})")
        if data.get("version") != VERSION:
            raise ValueError(f"unsupported annotation version {data.get('version')!r} (expected {VERSION})")
        width, height = data.get("width"), data.get("height")
        if not all(isinstance(v, int) and v > 0 for v in (width, height)):
            raise ValueError("width and height must be positive ints")
        review = data.get("review", "todo")
        if review not in REVIEW_STATES:
            raise ValueError(f"review must be one of {', '.join(REVIEW_STATES)}, got {review!r}")
        objects = [ObjectRecord.from_dict(o) for o in data.get("objects", [])]
        deleted = []
        for item in data.get("deleted", []):
            if not isinstance(item, dict) or not isinstance(item.get("index"), int):
                raise ValueError("a deleted entry must be {'index': int, 'object': {...}}")
            deleted.append(DeletedObject(item["index"], ObjectRecord.from_dict(item.get("object"))))
        every = objects + [d.record for d in deleted]
        next_id = max([int(data.get("next_id", 1))] + [o.id + 1 for o in every])
        annotation = cls(str(data.get("image", "")), width, height, objects, next_id, review, deleted,
                         _entries(data.get("history", [])), _entries(data.get("future", [])))
        _check_history(annotation)
        for what, rle in _rles(annotation):
            if list(rle["size"]) != [height, width]:
                raise ValueError(f"{what} is {rle['size'][0]}x{rle['size'][1]} (HxW) but the image is {height}x{width}")
        return annotation


def _rles(annotation: ImageAnnotation) -> list[tuple[str, dict[str, Any]]]:
    """Every mask of an annotation, named: objects' masks, strokes' changed pixels, resets' masks."""
    found = []
    for record in annotation.objects + [d.record for d in annotation.deleted]:
        if record.mask is not None:
            found.append((f"object {record.id}'s mask", record.mask))
        for step in record.actions + record.redo:
            if isinstance(step, Stroke) and step.changed is not None:
                found.append((f"a stroke of object {record.id}", step.changed))
            elif isinstance(step, Reset) and step.mask is not None:
                found.append((f"a reset of object {record.id}", step.mask))
    return found


def check_masks(annotation: ImageAnnotation) -> None:
    """Decode the live objects' masks once: ``ValueError`` naming the object whose RLE is damaged."""
    from clicksam.io.rle import rle_to_mask

    for record in annotation.objects:
        if record.mask is not None:
            try:
                rle_to_mask(record.mask)
            except ValueError as exc:
                raise ValueError(f"object {record.id}'s mask: {exc}") from exc


def _entries(value: Any) -> list[tuple[int, str]]:
    if not isinstance(value, list):
        raise ValueError("history and future must be lists of [object id, 'step' | 'delete']")
    entries = []
    for entry in value:
        if (not isinstance(entry, (list, tuple)) or len(entry) != 2 or not isinstance(entry[0], int)
                or entry[1] not in (STEP, DELETE)):
            raise ValueError(f"a history entry must be [object id, 'step' | 'delete'], got {entry!r:.80}")
        entries.append((int(entry[0]), str(entry[1])))
    return entries


def _check_history(annotation: ImageAnnotation) -> None:
    """The image history must name exactly the objects' steps and the deletes."""
    live = {o.id: o for o in annotation.objects}
    gone = {d.record.id: d.record for d in annotation.deleted}
    if len(live) + len(gone) != len(annotation.objects) + len(annotation.deleted) or set(live) & set(gone):
        raise ValueError("object ids must be unique among objects and deleted objects")
    done = Counter(oid for oid, kind in annotation.history if kind == STEP)
    undone = Counter(oid for oid, kind in annotation.future if kind == STEP)
    for oid, record in {**live, **gone}.items():
        if done[oid] != len(record.actions) or undone[oid] != len(record.redo):
            raise ValueError(f"the image history does not match the steps of object {oid}")
    if set(done) - set(live) - set(gone) or set(undone) - set(live) - set(gone):
        raise ValueError("the image history names unknown objects")
    deletes = [oid for oid, kind in annotation.history if kind == DELETE]
    undeletes = [oid for oid, kind in annotation.future if kind == DELETE]
    if sorted(deletes) != sorted(gone) or not set(undeletes) <= set(live) or len(set(deletes + undeletes)) != len(
            deletes + undeletes):
        raise ValueError("the image history's deletes do not match the deleted objects")


def migrate_v1(data: dict[str, Any], classes: ClassList) -> dict[str, Any]:
    """A version-1 annotation dict as version 2 (labels become classes of ``classes``)."""
    objects = []
    for item in data.get("objects", []):
        if not isinstance(item, dict) or not isinstance(item.get("label"), str):
            raise ValueError("a version-1 object needs a 'label' string")
        migrated = {k: v for k, v in item.items() if k != "label"}
        migrated["class"] = classes.ensure(item["label"]).id
        objects.append(migrated)
    return {**{k: v for k, v in data.items() if k != "objects"}, "version": VERSION, "objects": objects,
            "review": "in_progress" if objects else "todo", "deleted": [],
            "history": [[o.get("id"), STEP] for o in objects for _ in o.get("actions", [])],
            "future": [[o.get("id"), STEP] for o in objects for _ in o.get("redo", [])]}


class AnnotationStore:
    """Reads and atomically writes :class:`ImageAnnotation` files under ``root``; holds the
    folder's class list (``root/.classes.json``).

    ``images`` is the annotated image folder: the migration of a version-1 file reads the image's
    EXIF orientation there (without it, or without the image, the stored pixels are assumed).
    """

    def __init__(self, root: str | os.PathLike[str], images: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.images_root = None if images is None else Path(images).expanduser().resolve()
        self.classes = ClassList(self.root / CLASSES_FILE)

    def path_for(self, image: str) -> Path:
        """The annotation file of an image name (already validated by the image folder)."""
        path = (self.root / f"{image}.json").resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"image name {image!r} leaves the annotation folder")
        return path

    def load(self, image: str) -> Optional[ImageAnnotation]:
        """The saved annotation of ``image`` (a version-1 file is migrated and rewritten), or
        ``None``; ``ValueError`` naming a corrupt file."""
        path = self.path_for(image)
        if not path.is_file():
            return None
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text)
            migrated = isinstance(data, dict) and data.get("format") == FORMAT and data.get("version") == 1
            if migrated:
                data = migrate_v1(data, self.classes)
            annotation = ImageAnnotation.from_dict(data)
            if migrated:
                annotation = self._oriented(image, annotation)
            for record in annotation.objects + [d.record for d in annotation.deleted]:
                if self.classes.get(record.class_id) is None:
                    raise ValueError(f"object {record.id} has class {record.class_id}, which is not in "
                                     f"{self.classes.path} (restore that file)")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"corrupt annotation file {path}: {exc}") from exc
        annotation.image = image
        if migrated:
            atomic_write_bytes(path.with_name(path.name + ".v1.bak"), text.encode("utf-8"))
            self.save(annotation)
        return annotation

    def _oriented(self, image: str, annotation: ImageAnnotation) -> ImageAnnotation:
        """A version-1 annotation (made on the stored pixels) turned as read_image shows the image."""
        from clicksam.images import ImageReadError, read_exif_orientation
        from clicksam.server.orientation import orient_annotation

        path = None if self.images_root is None else self.images_root / image
        if path is None or not path.is_file():
            return annotation
        try:
            orientation = read_exif_orientation(path)
        except ImageReadError as exc:  # migrated once the image can be read, never on a guess
            raise ValueError(f"a version-1 file is migrated on its image, which cannot be read: {exc.reason}") from exc
        return orient_annotation(annotation, orientation)

    def save(self, annotation: ImageAnnotation) -> Path:
        """Write an annotation atomically (temporary file + rename)."""
        return atomic_write_json(self.path_for(annotation.image), annotation.to_dict())

    def images(self) -> list[str]:
        """Names of the images that have an annotation file."""
        return sorted(p.relative_to(self.root).as_posix()[:-5] for p in self.root.rglob("*.json")
                      if not p.name.startswith("."))
