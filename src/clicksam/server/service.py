"""The annotator's logic, independent of HTTP: objects, prompts, strokes, undo/redo, saving.

Every change is saved at once (atomic JSON per image). A session per object is opened lazily by
replaying the object's current prompts, so after a restart the stored masks show immediately
and the first new click recomputes the object from its clicks. Strokes, resets and deletes
never need the model: their undo data is kept with the step.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Optional, Sequence

import numpy as np

from clicksam.images import read_image_size
from clicksam.io.rle import mask_to_rle, rle_to_mask
from clicksam.prompts import check_box
from clicksam.server import history
from clicksam.server.backend import SessionFactory
from clicksam.server.brush import apply_overrides, override_layer, paint
from clicksam.server.catalog import Catalog
from clicksam.server.errors import AnnotatorError, BadInput, Conflict, NotFound
from clicksam.server.images import ImageFolder
from clicksam.server.sessions import SessionPool, apply_prompt
from clicksam.server.steps import Action, Reset, Step, Stroke
from clicksam.server.store import DELETE, REVIEW_STATES, AnnotationStore, ImageAnnotation, ObjectRecord
from clicksam.server.views import image_state, object_view
from clicksam.server.worker import OPEN, PREFETCH, EncodingWorker

__all__ = ["AnnotatorService"]


class AnnotatorService:
    """Objects and prompts of the images of one folder; ``catalog`` lists it and keeps its classes.

    Args:
        folder: the served images.
        store: where annotations (and the class list) are saved.
        factory: encodes images and opens sessions.
        prefetch: how many following images to encode in advance when one is opened.
        encode_timeout: seconds a prompt waits for its image's encoding before a 503.
        live_images: images whose sessions (and embeddings) stay in memory.
        decode_slots: prompts computed at the same time (others queue). A decode is many small
            ops, so a few at once use a CPU better than one (measured with benchmarks/web_load.py).
    """

    def __init__(self, folder: ImageFolder, store: AnnotationStore, factory: SessionFactory,
                 prefetch: int = 2, encode_timeout: float = 120.0, live_images: int = 8,
                 decode_slots: int = 4) -> None:
        self.folder, self.store, self.factory, self.prefetch = folder, store, factory, prefetch
        self.worker = EncodingWorker(factory.prepare, folder.read, capacity=live_images)
        self.sessions = SessionPool(factory, self.worker, encode_timeout, live_images, decode_slots)
        self._options = {o.name: o for o in factory.method_options()}
        self.default_method = next((n for n, o in self._options.items() if o.available), "sam")
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._annotations: dict[str, ImageAnnotation] = {}
        self.catalog = Catalog(folder, store, self.worker)

    def close(self) -> None:
        """Stop the encoding worker."""
        self.worker.stop()

    # ----------------------------------------------------------------- reading
    def method_options(self) -> list[dict[str, Any]]:
        """The method menu with availability."""
        return [o.to_dict() for o in self._options.values()]

    def annotation(self, name: str) -> dict[str, Any]:
        """An image's size, encoding and review status, history state and objects (masks as runs)."""
        annotation = self._annotation(name)
        return {"image": name, "width": annotation.width, "height": annotation.height,
                "status": self.worker.status(name), "error": self.worker.error(name),
                **image_state(annotation), "objects": [self._view(o) for o in annotation.objects]}

    def image_png(self, name: str) -> bytes:
        """The image re-encoded as PNG exactly as the model sees it (EXIF orientation applied, as viewers show it)."""
        import cv2

        image = self.folder.read(name)
        ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise BadInput(f"cannot encode image {name!r} as PNG")
        return data.tobytes()

    def open_image(self, name: str) -> dict[str, Any]:
        """Queue ``name`` for encoding first and prefetch the images after it."""
        self.folder.resolve(name)
        status = self.worker.request(name, OPEN)
        for neighbour in self.folder.neighbours(name, self.prefetch):
            self.worker.request(neighbour, PREFETCH)
        return {"image": name, "status": status, "progress": self.catalog.progress()}

    # ----------------------------------------------------------------- image review
    def set_review(self, name: str, review: str) -> dict[str, Any]:
        """Set the image's review status (``todo``, ``in_progress``, ``done``, ``needs_review``)."""
        if review not in REVIEW_STATES:
            raise BadInput(f"review must be one of {', '.join(REVIEW_STATES)}, got {review!r}")
        with self._lock(name):
            annotation = self._annotation(name)
            annotation.review = review
            self._save(annotation, started=False)
            return {"image": name, "image_state": image_state(annotation)}

    # ----------------------------------------------------------------- objects
    def create_object(self, name: str, label: Optional[str] = None, class_id: Optional[int] = None,
                      method: Optional[str] = None) -> dict[str, Any]:
        """Add an empty object of a class (by id, or by name: created when new; default the first class)."""
        with self._lock(name), self.catalog.class_lock:
            annotation = self._annotation(name)
            record = ObjectRecord(annotation.next_id, self.catalog.class_for(label, class_id),
                                  self._check_method(method or self.default_method))
            annotation.next_id += 1
            annotation.objects.append(record)
            self._save(annotation)
            return self._answer(annotation, record)

    def update_object(self, name: str, object_id: int, label: Optional[str] = None,
                      class_id: Optional[int] = None, method: Optional[str] = None,
                      hidden: Optional[bool] = None, locked: Optional[bool] = None,
                      solo: Optional[bool] = None) -> dict[str, Any]:
        """Change an object's class, method (it continues from its prompts, replayed with the new
        method) or display flags. None of these is a step of the history."""
        with self._lock(name), self.catalog.class_lock:
            annotation, record = self._object(name, object_id)
            new_class = record.class_id if label is None and class_id is None else self.catalog.class_for(label, class_id)
            new_method = record.method if method is None else self._check_method(method)
            latency = None
            if new_method != record.method and record.locked:
                raise Conflict(f"object {object_id} is locked; unlock it to switch its method")
            if new_method != record.method:
                latency = self._switch_method(name, record, new_method)
            record.class_id = new_class
            record.hidden = record.hidden if hidden is None else hidden
            record.locked = record.locked if locked is None else locked
            record.solo = record.solo if solo is None else solo
            self._save(annotation, started=False)
            return self._answer(annotation, record, latency)

    def _switch_method(self, name: str, record: ObjectRecord, method: str) -> Optional[float]:
        """Replay the object's prompts with ``method``; on failure the object stays as it was."""
        if not any(isinstance(s, Action) for s in record.current):
            self.sessions.drop(name, record.id)
            record.method = method
            return None
        started = time.perf_counter()
        session = self.sessions.build(name, record, method)
        latency = time.perf_counter() - started
        self.sessions.put(name, record.id, session)
        record.method = method
        self._refresh_mask(name, record)
        return latency

    def delete_object(self, name: str, object_id: int) -> dict[str, Any]:
        """Delete an object: a step of the image history, so undo puts it back."""
        with self._lock(name):
            annotation, record = self._object(name, object_id, change=True)
            history.delete_object(annotation, record)
            self.sessions.drop(name, object_id)
            self._save(annotation)
            return {"id": object_id, "deleted": True, "image_state": image_state(annotation)}

    # ----------------------------------------------------------------- steps
    def click(self, name: str, object_id: int, x: float, y: float, positive: bool = True) -> dict[str, Any]:
        """Add a positive or negative click at pixel (x, y)."""
        self._check_point(self._annotation(name), x, y, "click")
        return self._prompt(name, object_id, Action("click", float(x), float(y), bool(positive)))

    def box(self, name: str, object_id: int, x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
        """Set the object's box (XYXY pixels; corners may be given in any order)."""
        annotation = self._annotation(name)
        self._check_point(annotation, x0, y0, "box corner")
        self._check_point(annotation, x1, y1, "box corner")
        left, right = sorted((float(x0), float(x1)))  # a box may be drawn in any direction
        top, bottom = sorted((float(y0), float(y1)))
        try:
            check_box((left, top, right, bottom), (annotation.height, annotation.width))  # the one rule for boxes
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        return self._prompt(name, object_id, Action("box", box=(left, top, right, bottom)))

    def stroke(self, name: str, object_id: int, mode: str, radius: float,
               points: Sequence[Sequence[float]]) -> dict[str, Any]:
        """Paint (``mode="paint"``) or erase along the polyline ``points`` (XY pixels) with a round
        brush of ``radius`` pixels (see :mod:`clicksam.server.brush`). Needs no model."""
        try:
            step = Stroke.from_dict({"mode": mode, "radius": radius, "points": [list(p) for p in points]})
        except ValueError as exc:
            raise BadInput(str(exc)) from exc
        with self._lock(name):
            annotation, record = self._object(name, object_id, change=True)
            before = self._mask_array(annotation, record)
            after = paint(before, step)
            step = dataclasses.replace(step, changed=mask_to_rle(before ^ after))
            record.mask = mask_to_rle(after)
            history.push_step(annotation, record, step)
            self._save(annotation)
            return self._answer(annotation, record)

    def reset(self, name: str, object_id: int) -> dict[str, Any]:
        """Clear the object (keeps its class and method): a step that undo takes back."""
        with self._lock(name):
            annotation, record = self._object(name, object_id, change=True)
            if not record.current:
                raise Conflict(f"object {object_id} is empty already")
            history.push_step(annotation, record, Reset(record.mask, record.score))
            record.mask, record.score = None, None
            self.sessions.drop(name, object_id)
            self._save(annotation)
            return self._answer(annotation, record)

    def undo(self, name: str, object_id: Optional[int] = None) -> dict[str, Any]:
        """Undo the image's last step (or the object's, when ``object_id`` is given)."""
        return self._move(name, object_id, redo=False)

    def redo(self, name: str, object_id: Optional[int] = None) -> dict[str, Any]:
        """Redo the last undone step of the image (or of the object)."""
        return self._move(name, object_id, redo=True)

    # ----------------------------------------------------------------- internals
    def _prompt(self, name: str, object_id: int, action: Action) -> dict[str, Any]:
        with self._lock(name):
            annotation, record = self._object(name, object_id, change=True)
            session = self.sessions.get(name, record)
            try:
                with self.sessions.compute:  # the latency shown is compute time, not time queued
                    started = time.perf_counter()
                    apply_prompt(session, action)
                    latency = time.perf_counter() - started
            except ValueError as exc:
                raise BadInput(str(exc)) from exc
            history.push_step(annotation, record, action)
            self._refresh_mask(name, record)
            self._save(annotation)
            return self._answer(annotation, record, latency)

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
        except AnnotatorError:
            record.actions.append(step)
            self.sessions.drop(name, record.id)  # rebuilt from the record next time
            raise
        record.redo.append(step)

    def _redo_step(self, name: str, record: ObjectRecord) -> None:
        step = record.redo[-1]
        if isinstance(step, Action):
            session = self.sessions.get(name, record)
            with self.sessions.compute:
                apply_prompt(session, step)
        elif isinstance(step, Reset):
            self.sessions.drop(name, record.id)
        record.actions.append(record.redo.pop())
        self._after(name, record, step, undone=False)

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

    def _refresh_mask(self, name: str, record: ObjectRecord) -> None:
        """Recompute the mask: the session's (model) mask with the strokes' overrides on top."""
        steps = record.current
        if not steps:
            record.mask, record.score = None, None
            return
        annotation = self._annotation(name)
        shape = (annotation.height, annotation.width)
        if any(isinstance(s, Action) for s in steps):
            session = self.sessions.get(name, record)
            model, score = np.asarray(session.mask, dtype=bool), session.score
        else:
            model, score = np.zeros(shape, dtype=bool), None
        record.mask = mask_to_rle(apply_overrides(model, override_layer(steps, shape)))
        record.score = None if score is None else round(float(score), 4)

    @staticmethod
    def _mask_array(annotation: ImageAnnotation, record: ObjectRecord) -> np.ndarray:
        if record.mask is None:
            return np.zeros((annotation.height, annotation.width), dtype=bool)
        return rle_to_mask(record.mask)

    @staticmethod
    def _index(annotation: ImageAnnotation, record: ObjectRecord) -> int:
        return next((i for i, o in enumerate(annotation.objects) if o.id == record.id), -1)

    def _view(self, record: ObjectRecord, latency: Optional[float] = None) -> dict[str, Any]:
        entry = self.store.classes.get(record.class_id)
        return object_view(record, entry.name if entry is not None else "", latency)

    def _answer(self, annotation: ImageAnnotation, record: ObjectRecord,
                latency: Optional[float] = None) -> dict[str, Any]:
        return {**self._view(record, latency), "image_state": image_state(annotation)}

    def _lock(self, name: str) -> threading.RLock:
        self.folder.resolve(name)
        with self._guard:
            return self._locks.setdefault(name, threading.RLock())

    def _annotation(self, name: str) -> ImageAnnotation:
        path = self.folder.resolve(name)
        with self._guard:
            cached = self._annotations.get(name)
        if cached is not None:
            return cached
        try:
            annotation = self.store.load(name)
        except ValueError as exc:
            raise Conflict(str(exc)) from exc
        if annotation is None:
            width, height = read_image_size(path)  # header only: the size as read_image decodes it (EXIF applied)
            annotation = ImageAnnotation(name, width, height)
        with self._guard:
            return self._annotations.setdefault(name, annotation)

    def _object(self, name: str, object_id: int, change: bool = False) -> tuple[ImageAnnotation, ObjectRecord]:
        """The annotation and a live object; ``change`` refuses a locked object (409)."""
        annotation = self._annotation(name)
        record = annotation.find(object_id)
        if record is None:
            raise NotFound(f"image {name!r} has no object {object_id}")
        if change and record.locked:
            raise Conflict(f"object {object_id} is locked; unlock it to change it")
        return annotation, record

    def _save(self, annotation: ImageAnnotation, started: bool = True) -> None:
        """Write the file; ``started``: a change of the annotation, which moves a to-do image in progress."""
        if started and annotation.review == "todo":
            annotation.review = "in_progress"
        self.store.save(annotation)
        self.catalog.summarise(annotation)

    def _check_method(self, method: str) -> str:
        from clicksam.methods import canonical_method, parse_method

        try:
            canonical = canonical_method(parse_method(method))
        except ValueError as exc:
            raise BadInput(str(exc)) from exc
        option = self._options.get(canonical)
        if option is None or not option.available:
            reason = option.reason if option is not None else "not offered by this server"
            raise Conflict(f"method {canonical!r} is unavailable: {reason}")
        return canonical

    @staticmethod
    def _check_point(annotation: ImageAnnotation, x: float, y: float, what: str) -> None:
        if not (0 <= x < annotation.width and 0 <= y < annotation.height):
            raise BadInput(f"{what} ({x:g}, {y:g}) lies outside the {annotation.width}x{annotation.height} image")

