"""The annotator's logic, independent of HTTP: objects, prompts, undo/redo, saving, encoding.

Every change is saved at once (atomic JSON per image). A session per object is opened lazily by
replaying the saved history, so after a restart the stored masks show immediately and the first
new click recomputes the object from its clicks.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from typing import Any, Optional

import numpy as np
from PIL import Image

from clicksam.io.rle import mask_to_rle, mask_to_runs, rle_area, rle_bbox, rle_to_mask
from clicksam.server.backend import ObjectSession, SessionFactory
from clicksam.server.errors import AnnotatorError, BadInput, Conflict, NotFound
from clicksam.server.images import ImageFolder
from clicksam.server.store import Action, AnnotationStore, ImageAnnotation, ObjectRecord
from clicksam.server.worker import OPEN, PREFETCH, EncodingWorker

__all__ = ["AnnotatorService", "MAX_LABEL_LENGTH"]

MAX_LABEL_LENGTH = 100


class AnnotatorService:
    """Objects and prompts of the images of one folder.

    Args:
        folder: the served images.
        store: where annotations are saved.
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
        if decode_slots < 1:
            raise ValueError(f"decode_slots must be >= 1, got {decode_slots}")
        self.folder, self.store, self.factory = folder, store, factory
        self.prefetch, self.encode_timeout, self.live_images = prefetch, encode_timeout, live_images
        self.worker = EncodingWorker(factory.prepare, folder.read, capacity=live_images)
        self._options = {o.name: o for o in factory.method_options()}
        self.default_method = next((n for n, o in self._options.items() if o.available), "sam")
        self._guard = threading.Lock()
        self._compute = threading.BoundedSemaphore(decode_slots)
        self._locks: dict[str, threading.RLock] = {}
        self._annotations: dict[str, ImageAnnotation] = {}
        self._sessions: OrderedDict[str, dict[int, ObjectSession]] = OrderedDict()
        self._counts = {name: len(a.objects) for name in store.images()
                        if name in folder.names and (a := self._load_quietly(name)) is not None}

    def close(self) -> None:
        """Stop the encoding worker."""
        self.worker.stop()

    # ----------------------------------------------------------------- reading
    def method_options(self) -> list[dict[str, Any]]:
        """The method menu with availability."""
        return [o.to_dict() for o in self._options.values()]

    def images(self) -> list[dict[str, Any]]:
        """Every image with its encoding status and object count."""
        return [{"name": n, "status": self.worker.status(n), "objects": self._counts.get(n, 0)}
                for n in self.folder.rescan()]

    def progress(self) -> dict[str, Any]:
        """Encoding progress for the page."""
        summary = self.worker.summary()
        summary["total"] = len(self.folder.names)
        return summary

    def annotation(self, name: str) -> dict[str, Any]:
        """An image's size, status and objects (masks as row-major runs)."""
        annotation = self._annotation(name)
        return {"image": name, "width": annotation.width, "height": annotation.height,
                "status": self.worker.status(name), "error": self.worker.error(name),
                "objects": [self._view(o) for o in annotation.objects]}

    def image_png(self, name: str) -> bytes:
        """The image re-encoded as PNG exactly as the model sees it (no EXIF rotation)."""
        import cv2

        image = self.folder.read(name)
        ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]),
                                [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise BadInput(f"cannot encode image {name!r} as PNG")
        return data.tobytes()

    # ----------------------------------------------------------------- encoding
    def open_image(self, name: str) -> dict[str, Any]:
        """Queue ``name`` for encoding first and prefetch the images after it."""
        self.folder.resolve(name)
        status = self.worker.request(name, OPEN)
        for neighbour in self.folder.neighbours(name, self.prefetch):
            self.worker.request(neighbour, PREFETCH)
        return {"image": name, "status": status, "progress": self.progress()}

    # ----------------------------------------------------------------- objects
    def create_object(self, name: str, label: str = "object", method: Optional[str] = None) -> dict[str, Any]:
        """Add an empty object to an image."""
        with self._lock(name):
            annotation = self._annotation(name)
            record = ObjectRecord(annotation.next_id, self._check_label(label),
                                  self._check_method(method or self.default_method))
            annotation.next_id += 1
            annotation.objects.append(record)
            self._save(annotation)
            return self._view(record)

    def update_object(self, name: str, object_id: int, label: Optional[str] = None,
                      method: Optional[str] = None) -> dict[str, Any]:
        """Rename an object and/or switch its method (its prompts are replayed with the new one)."""
        with self._lock(name):
            annotation, record = self._object(name, object_id)
            new_label = record.label if label is None else self._check_label(label)
            new_method = record.method if method is None else self._check_method(method)
            latency, session = None, None
            if new_method != record.method and (record.actions or record.redo):
                # recompute with the new method first: on failure the object stays as it was
                old_session = self._sessions.get(name, {}).pop(object_id, None)
                started = time.perf_counter()
                try:
                    session = self._session(name, dataclasses.replace(record, method=new_method))
                except AnnotatorError:
                    if old_session is not None:
                        self._sessions.setdefault(name, {})[object_id] = old_session
                    raise
                latency = time.perf_counter() - started
            elif new_method != record.method:
                self._sessions.get(name, {}).pop(object_id, None)
            record.label, record.method = new_label, new_method
            if session is not None:
                self._store_mask(record, session)
            self._save(annotation)
            return self._view(record, latency)

    def delete_object(self, name: str, object_id: int) -> None:
        """Remove an object."""
        with self._lock(name):
            annotation, record = self._object(name, object_id)
            annotation.objects.remove(record)
            self._sessions.get(name, {}).pop(object_id, None)
            self._save(annotation)

    # ----------------------------------------------------------------- prompts
    def click(self, name: str, object_id: int, x: float, y: float, positive: bool = True) -> dict[str, Any]:
        """Add a positive or negative click at pixel (x, y)."""
        annotation = self._annotation(name)
        self._check_point(annotation, x, y, "click")
        return self._prompt(name, object_id, Action("click", float(x), float(y), bool(positive)))

    def box(self, name: str, object_id: int, x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
        """Set the object's box (XYXY pixels; corners may be given in any order)."""
        annotation = self._annotation(name)
        self._check_point(annotation, x0, y0, "box corner")
        self._check_point(annotation, x1, y1, "box corner")
        left, right = sorted((float(x0), float(x1)))
        top, bottom = sorted((float(y0), float(y1)))
        if right - left < 1 or bottom - top < 1:
            raise BadInput("the box must be at least 1 pixel wide and high")
        return self._prompt(name, object_id, Action("box", box=(left, top, right, bottom)))

    def undo(self, name: str, object_id: int) -> dict[str, Any]:
        """Undo the object's last prompt."""
        return self._history(name, object_id, redo=False)

    def redo(self, name: str, object_id: int) -> dict[str, Any]:
        """Redo the last undone prompt."""
        return self._history(name, object_id, redo=True)

    def reset(self, name: str, object_id: int) -> dict[str, Any]:
        """Clear the object's prompts and mask (keeps its label and method)."""
        with self._lock(name):
            annotation, record = self._object(name, object_id)
            record.actions, record.redo, record.mask, record.score = [], [], None, None
            self._sessions.get(name, {}).pop(object_id, None)
            self._save(annotation)
            return self._view(record)

    # ----------------------------------------------------------------- internals
    def _prompt(self, name: str, object_id: int, action: Action) -> dict[str, Any]:
        with self._lock(name):
            annotation, record = self._object(name, object_id)
            session = self._session(name, record)
            try:
                with self._compute:  # the latency shown is compute time, not time queued
                    started = time.perf_counter()
                    self._apply(session, action)
                    latency = time.perf_counter() - started
            except ValueError as exc:
                raise BadInput(str(exc)) from exc
            record.actions.append(action)
            record.redo.clear()
            self._store_mask(record, session)
            self._save(annotation)
            return self._view(record, latency)

    def _history(self, name: str, object_id: int, redo: bool) -> dict[str, Any]:
        with self._lock(name):
            annotation, record = self._object(name, object_id)
            source, target = (record.redo, record.actions) if redo else (record.actions, record.redo)
            if not source:
                raise Conflict(f"nothing to {'redo' if redo else 'undo'} for object {object_id}")
            session = self._session(name, record)
            started = time.perf_counter()
            session.redo() if redo else session.undo()
            latency = time.perf_counter() - started
            target.append(source.pop())
            self._store_mask(record, session)
            self._save(annotation)
            return self._view(record, latency)

    @staticmethod
    def _apply(session: ObjectSession, action: Action) -> None:
        if action.kind == "click":
            session.add_click(action.x, action.y, positive=action.positive)
        else:
            session.add_box(*action.box)

    def _session(self, name: str, record: ObjectRecord) -> ObjectSession:
        """The object's live session, rebuilt by replaying its saved history when needed."""
        live = self._sessions.get(name)
        if live is not None and record.id in live:
            self._sessions.move_to_end(name)
            return live[record.id]
        prepared = self.worker.get(name, self.encode_timeout)
        try:
            session = self.factory.create(prepared, record.method)
        except ValueError as exc:
            raise Conflict(str(exc)) from exc
        with self._compute:
            for action in [*record.actions, *reversed(record.redo)]:
                self._apply(session, action)
            for _ in record.redo:
                session.undo()
        with self._guard:
            self._sessions.setdefault(name, {})[record.id] = session
            self._sessions.move_to_end(name)
            while len(self._sessions) > self.live_images:
                self._sessions.popitem(last=False)
        return session

    @staticmethod
    def _store_mask(record: ObjectRecord, session: ObjectSession) -> None:
        mask = session.mask if record.actions else None
        if mask is None:
            record.mask, record.score = None, None
            return
        record.mask = mask_to_rle(np.asarray(mask, dtype=bool))
        score = session.score
        record.score = None if score is None else round(float(score), 4)

    def _view(self, record: ObjectRecord, latency: Optional[float] = None) -> dict[str, Any]:
        view: dict[str, Any] = {"id": record.id, "label": record.label, "method": record.method,
                                "clicks": record.clicks, "box": record.box, "score": record.score,
                                "can_undo": bool(record.actions), "can_redo": bool(record.redo),
                                "mask": None, "area": 0, "bbox": None}
        if record.mask is not None:
            view["mask"] = mask_to_runs(rle_to_mask(record.mask))
            view["area"] = rle_area(record.mask)
            view["bbox"] = rle_bbox(record.mask)
        if latency is not None:
            view["latency_ms"] = round(latency * 1000.0, 1)
        return view

    def _lock(self, name: str) -> threading.RLock:
        self.folder.resolve(name)
        with self._guard:
            return self._locks.setdefault(name, threading.RLock())

    def _load_quietly(self, name: str) -> Optional[ImageAnnotation]:
        try:
            return self.store.load(name)
        except ValueError:
            return None

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
            with Image.open(path) as image:  # header only: the size, as read_image will decode it
                width, height = image.size
            annotation = ImageAnnotation(name, width, height)
        with self._guard:
            return self._annotations.setdefault(name, annotation)

    def _object(self, name: str, object_id: int) -> tuple[ImageAnnotation, ObjectRecord]:
        annotation = self._annotation(name)
        record = annotation.find(object_id)
        if record is None:
            raise NotFound(f"image {name!r} has no object {object_id}")
        return annotation, record

    def _save(self, annotation: ImageAnnotation) -> None:
        self.store.save(annotation)
        self._counts[annotation.image] = len(annotation.objects)

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
    def _check_label(label: str) -> str:
        text = label.strip() if isinstance(label, str) else ""
        if not text or len(text) > MAX_LABEL_LENGTH or any(ord(c) < 32 for c in text):
            raise BadInput(f"label must be 1-{MAX_LABEL_LENGTH} printable characters")
        return text

    @staticmethod
    def _check_point(annotation: ImageAnnotation, x: float, y: float, what: str) -> None:
        if not (0 <= x < annotation.width and 0 <= y < annotation.height):
            raise BadInput(f"{what} ({x:g}, {y:g}) lies outside the {annotation.width}x{annotation.height} image")
