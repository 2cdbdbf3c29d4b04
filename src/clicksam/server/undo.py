"""Undo and redo of the annotator: the image's last step (of any object), or one object's.

The bookkeeping (which entry of the image history goes where) is :mod:`clicksam.server.history`;
this part of :class:`clicksam.server.service.AnnotatorService` applies a step back or forth: a
prompt through the object's live session (undo) or its stored results (redo, no decode), a stroke
through the pixels it changed, a reset through the mask it cleared, a delete by moving the object.
"""
from __future__ import annotations

import time
from typing import Any, Optional

from clicksam.io.rle import mask_to_rle, rle_to_mask
from clicksam.server import history
from clicksam.server.errors import AnnotatorError, Conflict
from clicksam.server.steps import Action, Reset, Step, Stroke
from clicksam.server.store import DELETE, ObjectRecord

__all__ = ["UndoRedo"]


def _conflict(name: str, exc: Exception) -> AnnotatorError:
    """An annotator error as it is; a ``ValueError`` (damaged data in the annotation) as a 409."""
    return exc if isinstance(exc, AnnotatorError) else Conflict(f"the annotation of {name!r} is damaged: {exc}")


class UndoRedo:
    """Undo/redo methods of the annotator service (a mixin: it uses the service's sessions,
    annotations, locks and saving)."""

    def undo(self, name: str, object_id: Optional[int] = None) -> dict[str, Any]:
        """Undo the image's last step (or the object's, when ``object_id`` is given)."""
        return self._move(name, object_id, redo=False)

    def redo(self, name: str, object_id: Optional[int] = None) -> dict[str, Any]:
        """Redo the last undone step of the image (or of the object)."""
        return self._move(name, object_id, redo=True)

    # ----------------------------------------------------------------- applying a step
    def _move(self, name: str, object_id: Optional[int], redo: bool) -> dict[str, Any]:
        with self._lock(name):
            annotation = self._annotation(name)
            source, target = (annotation.future, annotation.history) if redo else (annotation.history, annotation.future)
            index = history.last_entry(source, object_id, "redo" if redo else "undo")
            entry = source[index]
            started = time.perf_counter()
            if entry[1] == DELETE and not redo:
                record, deleted = history.restore_object(annotation, entry[0]), False
            elif entry[1] == DELETE:
                _, record = self._object(name, entry[0], change=True)
                history.delete_object(annotation, record, entry)
                self.sessions.drop(name, record.id)
                deleted = True
            else:
                _, record = self._object(name, entry[0], change=True)
                self._redo_step(name, record) if redo else self._undo_step(name, record)
                deleted = False
            del source[index]
            if entry[1] != DELETE or not redo:
                target.append(entry)
            self._save(annotation)
            answer = self._answer(annotation, record, time.perf_counter() - started)
            return {**answer, "deleted": deleted, "index": self._index(annotation, record)}

    def _undo_step(self, name: str, record: ObjectRecord) -> None:
        step = record.actions[-1]
        if isinstance(step, Action) and (session := self.sessions.live(name, record.id)) is not None:
            session.undo()
        elif isinstance(step, Reset):
            self.sessions.drop(name, record.id)
        record.actions.pop()
        try:
            self._after(name, record, step, undone=True)
        except (AnnotatorError, ValueError) as exc:
            record.actions.append(step)
            self.sessions.drop(name, record.id)  # rebuilt from the record next time
            raise _conflict(name, exc) from exc
        record.redo.append(step)

    def _redo_step(self, name: str, record: ObjectRecord) -> None:
        step = record.redo[-1]
        if isinstance(step, (Action, Reset)):
            self.sessions.drop(name, record.id)  # rebuilt from the stored steps, the redone one included
        record.actions.append(record.redo.pop())
        try:
            self._after(name, record, step, undone=False)
        except (AnnotatorError, ValueError) as exc:
            record.redo.append(record.actions.pop())
            self.sessions.drop(name, record.id)
            raise _conflict(name, exc) from exc

    def _after(self, name: str, record: ObjectRecord, step: Step, undone: bool) -> None:
        """Update the record's mask after ``step`` was undone or redone."""
        if not record.current:
            record.mask, record.score = None, None
        elif isinstance(step, Stroke):
            mask = self._mask_array(self._annotation(name), record) ^ rle_to_mask(step.changed)
            record.mask = mask_to_rle(mask)
        elif isinstance(step, Reset) and undone:
            record.mask, record.score = step.mask, step.score
        elif isinstance(step, Reset):
            record.mask, record.score = None, None
        else:
            self._refresh_mask(name, record)
