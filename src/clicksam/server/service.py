"""The annotator's logic, independent of HTTP: objects, prompts, strokes, undo/redo, saving.

Every change is saved at once (atomic JSON per image, with each prompt step's result stored beside
it, see :mod:`clicksam.server.states`). A session per object is opened lazily from the stored
results of the object's current steps, so after a restart the stored masks show immediately and
the next click costs one decode, not a replay; undo, redo and a method switch cost none. Strokes,
resets and deletes never need the model: their undo data is kept with the step. An image file that
cannot be read answers every request about it with a 422 and the reason.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Optional, Sequence

import numpy as np

from clicksam.io.rle import mask_to_rle, rle_to_mask
from clicksam.prompts import check_box
from clicksam.server import history
from clicksam.server.backend import SessionFactory
from clicksam.server.brush import apply_overrides, override_layer, paint
from clicksam.server.catalog import Catalog
from clicksam.server.display import DisplayImages, ImageInfo
from clicksam.server.errors import BadInput, Conflict, NotFound, UnreadableImage
from clicksam.server.images import ImageFolder
from clicksam.server.sessions import SessionPool, apply_prompt
from clicksam.server.states import StepStates
from clicksam.server.steps import Action, Reset, Stroke
from clicksam.server.undo import UndoRedo
from clicksam.server.store import (REVIEW_STATES, AnnotationStore, ImageAnnotation, ObjectRecord,
                                   check_masks)
from clicksam.server.views import image_state, object_view
from clicksam.server.worker import OPEN, PREFETCH, EncodingWorker

__all__ = ["AnnotatorService"]


class AnnotatorService(UndoRedo):
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
        self.display = DisplayImages(folder)
        self.worker = EncodingWorker(factory.prepare, self.display.pixels, capacity=live_images)
        self.states = StepStates(store)
        self.sessions = SessionPool(factory, self.worker, self.states, encode_timeout, live_images, decode_slots)
        self._options = {o.name: o for o in factory.method_options()}
        self.default_method = next((n for n, o in self._options.items() if o.available), "sam")
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._annotations: dict[str, ImageAnnotation] = {}
        self._versions: dict[str, str] = {}  # the image file's version the prepared image was made from
        self.catalog = Catalog(folder, store, self.worker)

    def close(self) -> None:
        """Stop the encoding worker."""
        self.worker.stop()

    # ----------------------------------------------------------------- reading
    def method_options(self) -> list[dict[str, Any]]:
        """The method menu with availability."""
        return [o.to_dict() for o in self._options.values()]

    def annotation(self, name: str) -> dict[str, Any]:
        """An image's size, display copy and tiles, encoding and review status, history state and
        objects (masks as runs)."""
        annotation = self._annotation(name)
        return {"image": name, "width": annotation.width, "height": annotation.height,
                **self._info(name).to_dict(), "status": self.worker.status(name),
                "error": self.worker.error(name), **image_state(annotation),
                "objects": [self._view(o) for o in annotation.objects]}

    def display_image(self, name: str) -> tuple[bytes, str]:
        """The image's display copy, as the model sees it (EXIF orientation applied), long side at
        most 2048: ``(bytes, media type)`` (see :mod:`clicksam.server.display`)."""
        self._info(name)
        return self.display.display(name)

    def tile(self, name: str, level: int, col: int, row: int) -> tuple[bytes, str]:
        """A full-resolution (level 0) or intermediate tile of the image, for a zoomed-in page."""
        self._info(name)
        return self.display.tile(name, level, col, row)

    def _info(self, name: str) -> ImageInfo:
        """The image's size and display description; an unreadable file is a 422 and is marked
        failed in the listing (with its reason). A changed file is encoded again."""
        try:
            info = self.display.info(name)
        except UnreadableImage as exc:
            self.worker.mark_failed(name, exc)
            raise
        with self._guard:
            seen = self._versions.setdefault(name, info.version)
            self._versions[name] = info.version
        if seen != info.version:  # new pixels: the old embedding and sessions must not be used
            self.worker.forget(name)
            self.sessions.drop_image(name)
        return info

    def open_image(self, name: str) -> dict[str, Any]:
        """Queue ``name`` for encoding first and prefetch the images after it."""
        self._info(name)  # an unreadable file is a 422 now, not a failed encoding later
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
        """Change an object's class, method (it keeps its mask and continues from it with the new
        method, see :meth:`_switch_method`) or display flags. None of these is a step of the history."""
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
        """Continue the object with ``method`` from its current steps' stored results (its mask
        stays; the next prompt runs the new method); on failure the object stays as it was."""
        if not any(isinstance(s, Action) for s in record.current):
            self.sessions.drop(name, record.id)
            record.method = method
            return None
        started = time.perf_counter()
        live = self.sessions.build(name, record, method)
        latency = time.perf_counter() - started
        self.sessions.put(name, record.id, live)
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

    # ----------------------------------------------------------------- internals
    def _prompt(self, name: str, object_id: int, action: Action) -> dict[str, Any]:
        with self._lock(name):
            annotation, record = self._object(name, object_id, change=True)
            session = self.sessions.get(name, record)
            try:
                with self.sessions.compute:  # the latency shown is compute time, not time queued
                    started = time.perf_counter()
                    mask = apply_prompt(session, action)
                    latency = time.perf_counter() - started
            except ValueError as exc:
                raise BadInput(str(exc)) from exc
            action = dataclasses.replace(action, state=self.sessions.store_current(name, record.id))
            history.push_step(annotation, record, action)
            self._refresh_mask(name, record, mask)
            self._save(annotation)
            return self._answer(annotation, record, latency)

    def _refresh_mask(self, name: str, record: ObjectRecord, model_mask: Optional[np.ndarray] = None) -> None:
        """Recompute the mask: the session's (model) mask with the strokes' overrides on top
        (``model_mask``: the session's mask when the caller has it already; it is computed on demand)."""
        steps = record.current
        if not steps:
            record.mask, record.score = None, None
            return
        annotation = self._annotation(name)
        shape = (annotation.height, annotation.width)
        if any(isinstance(s, Action) for s in steps):
            session = self.sessions.get(name, record)
            mask = session.mask if model_mask is None else model_mask
            model, score = np.asarray(mask, dtype=bool), session.score
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
        """The image's annotation (loaded once); the image must be readable (422) and of the size
        the annotation was made on (409)."""
        info = self._info(name)  # the size as read_image decodes it (EXIF applied)
        with self._guard:
            annotation = self._annotations.get(name)
        if annotation is None:
            try:
                annotation = self.store.load(name)
                if annotation is not None:
                    check_masks(annotation)
            except ValueError as exc:
                raise Conflict(str(exc)) from exc
            if annotation is None:
                annotation = ImageAnnotation(name, info.width, info.height)
            with self._guard:
                annotation = self._annotations.setdefault(name, annotation)
        if (annotation.width, annotation.height) != (info.width, info.height):
            raise Conflict(f"the annotation of {name!r} was made on a {annotation.width}x{annotation.height} image but "
                           f"the file is {info.width}x{info.height} now; put the original image back, or move "
                           f"{self.store.path_for(name)} away to start this image again")
        return annotation

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
        self.states.collect(annotation)
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

