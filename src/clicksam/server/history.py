"""The image-level history: which object's step undo and redo take next, and deletes.

Every step of every object (prompt, stroke, reset) and every delete is an entry of the image's
``history``; undo moves the last entry to ``future`` and redo moves it back. A new step on an
object drops that object's redo stack and its entries of ``future`` (other objects keep theirs).
Undo and redo for one object only take that object's last entry. These functions change the
bookkeeping only; the caller recomputes masks.
"""
from __future__ import annotations

from typing import Optional

from clicksam.server.errors import Conflict
from clicksam.server.steps import Step
from clicksam.server.store import DELETE, STEP, DeletedObject, ImageAnnotation, ObjectRecord

__all__ = ["push_step", "delete_object", "restore_object", "last_entry"]


def _forget_future(annotation: ImageAnnotation, record: ObjectRecord) -> None:
    record.redo.clear()
    annotation.future = [entry for entry in annotation.future if entry[0] != record.id]


def push_step(annotation: ImageAnnotation, record: ObjectRecord, step: Step) -> None:
    """Record a new step of ``record`` (the caller has applied it)."""
    record.actions.append(step)
    _forget_future(annotation, record)
    annotation.history.append((record.id, STEP))


def delete_object(annotation: ImageAnnotation, record: ObjectRecord, entry: Optional[tuple[int, str]] = None) -> None:
    """Move ``record`` to the deleted objects. ``entry`` (a redone delete) is appended to the
    history; without it this is a new step, which drops the object's redo stack."""
    index = annotation.objects.index(record)
    annotation.objects.remove(record)
    annotation.deleted.append(DeletedObject(index, record))
    if entry is None:
        _forget_future(annotation, record)
        entry = (record.id, DELETE)
    annotation.history.append(entry)


def restore_object(annotation: ImageAnnotation, object_id: int) -> ObjectRecord:
    """Put a deleted object back where it was (undo of its delete)."""
    position = next(i for i, d in enumerate(annotation.deleted) if d.record.id == object_id)
    deleted = annotation.deleted.pop(position)
    annotation.objects.insert(min(deleted.index, len(annotation.objects)), deleted.record)
    return deleted.record


def last_entry(entries: list[tuple[int, str]], object_id: Optional[int], what: str) -> int:
    """Index of the last entry (of ``object_id`` when given); :class:`Conflict` when none."""
    for index in range(len(entries) - 1, -1, -1):
        if object_id is None or entries[index][0] == object_id:
            return index
    whose = "this image" if object_id is None else f"object {object_id}"
    raise Conflict(f"nothing to {what} for {whose}")

