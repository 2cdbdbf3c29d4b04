"""The folder as the page lists it: images with encoding and review status, counts, the class list.

A summary per annotated image (object count, review status, classes used) is read once at
start-up and kept up to date on every save, so listing a folder never reads annotation files.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

from clicksam.server.errors import BadInput, Conflict, NotFound
from clicksam.server.images import ImageFolder
from clicksam.server.store import REVIEW_STATES, AnnotationStore, ImageAnnotation
from clicksam.server.worker import EncodingWorker

__all__ = ["Catalog", "Summary"]

Summary = tuple[int, str, frozenset[int]]  # objects, review status, class ids used (deleted objects too)


def _summary(annotation: ImageAnnotation) -> Summary:
    records = annotation.objects + [d.record for d in annotation.deleted]
    return len(annotation.objects), annotation.review, frozenset(r.class_id for r in records)


class Catalog:
    """Listing, review counts and class list of the served folder."""

    def __init__(self, folder: ImageFolder, store: AnnotationStore, worker: EncodingWorker) -> None:
        self.folder, self.store, self.worker = folder, store, worker
        self._guard = threading.Lock()
        self.class_lock = threading.RLock()  # held from choosing an object's class until it is saved
        self._summaries: dict[str, Summary] = {}
        for name in store.images():
            if name in folder.names:
                try:
                    annotation = store.load(name)
                except ValueError:
                    continue  # reported when the image is opened
                if annotation is not None:
                    self._summaries[name] = _summary(annotation)

    def summarise(self, annotation: ImageAnnotation) -> None:
        """Record the state of a saved annotation."""
        with self._guard:
            self._summaries[annotation.image] = _summary(annotation)

    def images(self) -> list[dict[str, Any]]:
        """Every image with its encoding status, object count and review status."""
        with self._guard:
            summaries = dict(self._summaries)
        return [{"name": n, "status": self.worker.status(n), "objects": summaries.get(n, (0, "todo"))[0],
                 "review": summaries.get(n, (0, "todo"))[1]} for n in self.folder.rescan()]

    @staticmethod
    def review_counts(images: list[dict[str, Any]]) -> dict[str, int]:
        """How many of ``images`` are in each review state."""
        return {state: sum(i["review"] == state for i in images) for state in REVIEW_STATES}

    def progress(self) -> dict[str, Any]:
        """Encoding progress for the page."""
        summary = self.worker.summary()
        summary["total"] = len(self.folder.names)
        return summary

    # ----------------------------------------------------------------- classes
    def classes(self) -> list[dict[str, Any]]:
        """The class list with, per class, the number of images using it."""
        with self._guard:
            used = [s[2] for s in self._summaries.values()]
        return [{**c.to_dict(), "images": sum(c.id in u for u in used)} for c in self.store.classes.classes]

    def add_class(self, name: str, colour: Optional[str] = None) -> dict[str, Any]:
        """A new class at the end of the list."""
        try:
            return self.store.classes.add(name, colour).to_dict()
        except ValueError as exc:
            raise BadInput(str(exc)) from exc

    def update_class(self, class_id: int, name: Optional[str] = None, colour: Optional[str] = None) -> dict[str, Any]:
        """Rename and/or recolour a class (every object of it follows)."""
        try:
            return self.store.classes.update(class_id, name, colour).to_dict()
        except KeyError as exc:
            raise NotFound(f"no class with id {class_id}") from exc
        except ValueError as exc:
            raise BadInput(str(exc)) from exc

    def remove_class(self, class_id: int) -> None:
        """Remove a class that no object uses (deleted objects, which undo may bring back, count)."""
        with self.class_lock:
            with self._guard:
                users = sorted(name for name, s in self._summaries.items() if class_id in s[2])
            if users:
                raise Conflict(f"class {class_id} is used in {len(users)} image(s) (e.g. {users[0]!r}); "
                               "give those objects another class first")
            try:
                self.store.classes.remove(class_id)
            except KeyError as exc:
                raise NotFound(f"no class with id {class_id}") from exc

    def class_for(self, label: Optional[str], class_id: Optional[int]) -> int:
        """The class id for a new or changed object: ``class_id`` if it exists, else the class
        named ``label`` (added when new), else the first class (``object`` when the list is empty).
        Call it holding ``class_lock`` until the object is saved."""
        classes = self.store.classes
        if class_id is not None:
            if classes.get(class_id) is None:
                raise BadInput(f"no class with id {class_id}; add it to the class list first")
            return class_id
        try:
            if label is not None:
                return classes.ensure(label).id
            first = classes.classes[:1]
            return first[0].id if first else classes.ensure("object").id
        except ValueError as exc:
            raise BadInput(str(exc)) from exc
