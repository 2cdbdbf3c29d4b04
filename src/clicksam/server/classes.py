"""The class list of a served folder: names with stable ids and colours, saved atomically.

Saved beside the annotation files as ``.classes.json``::

    {"format": "clicksam-classes", "version": 1, "next_id": 4,
     "classes": [{"id": 1, "name": "cup", "colour": "#1e90ff"}, ...]}

Ids never change and are never reused, so renaming a class renames it everywhere at once, and
the COCO export's category ids are the class ids. Names are unique ignoring case ("cup" and
"Cup" cannot both exist). A plain text file (one class per line, ``#`` comments) can add classes.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from clicksam.io.atomic import atomic_write_json

__all__ = ["ObjectClass", "ClassList", "read_class_file", "check_class_name", "MAX_CLASS_NAME", "PALETTE"]

FORMAT = "clicksam-classes"
MAX_CLASS_NAME = 100
PALETTE = ("#1e90ff", "#ff6347", "#3cb371", "#ee82ee", "#ffa500", "#00ced1", "#ffd700", "#9370db",
           "#cd5c5c", "#9acd32", "#ff1493", "#20b2aa", "#d2691e", "#6495ed", "#adff2f", "#ba55d3")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def check_class_name(name: Any) -> str:
    """A stripped class name; ``ValueError`` when empty, too long or holding control characters."""
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_CLASS_NAME or any(ord(c) < 32 for c in text):
        raise ValueError(f"a class name must be 1-{MAX_CLASS_NAME} printable characters, got {name!r:.120}")
    return text


def _check_colour(colour: Any) -> str:
    if not isinstance(colour, str) or not _COLOUR.match(colour):
        raise ValueError(f"a class colour must look like '#1e90ff', got {colour!r:.40}")
    return colour.lower()


@dataclass(frozen=True)
class ObjectClass:
    """One class: a stable ``id`` (1, 2, ...), a unique ``name`` and a ``colour`` ``#rrggbb``."""

    id: int
    name: str
    colour: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "name": self.name, "colour": self.colour}


def read_class_file(path: str | Path) -> list[str]:
    """Class names from a text file: one per line; blank lines and lines starting with ``#`` skipped."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"class file not found: {file}")
    names = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            names.append(check_class_name(text))
        except ValueError as exc:
            raise ValueError(f"{file}, line {number}: {exc}") from exc
    return names


class ClassList:
    """The classes of one folder, kept in ``path`` (read when it exists, written on every change).

    Raises ``ValueError`` on a corrupt file, naming it. Thread-safe.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._classes: list[ObjectClass] = []
        self._next_id = 1
        if self.path.is_file():
            try:
                self._parse(json.loads(self.path.read_text(encoding="utf-8")))
            except (ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"corrupt class file {self.path}: {exc}") from exc

    def _parse(self, data: Any) -> None:
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != 1:
            raise ValueError(f"not a {FORMAT} version 1 file")
        seen: set[str] = set()
        for item in data["classes"]:
            entry = ObjectClass(int(item["id"]), check_class_name(item["name"]), _check_colour(item["colour"]))
            if entry.id < 1 or entry.name.casefold() in seen or self.get(entry.id) is not None:
                raise ValueError(f"duplicate or invalid class {item!r:.120}")
            seen.add(entry.name.casefold())
            self._classes.append(entry)
        self._next_id = max([int(data.get("next_id", 1))] + [c.id + 1 for c in self._classes])

    # ----------------------------------------------------------------- reading
    @property
    def classes(self) -> list[ObjectClass]:
        """The classes in their list order."""
        with self._lock:
            return list(self._classes)

    def get(self, class_id: int) -> Optional[ObjectClass]:
        """The class with this id, or ``None``."""
        return next((c for c in self._classes if c.id == class_id), None)

    def find(self, name: str) -> Optional[ObjectClass]:
        """The class with this name (ignoring case and surrounding spaces), or ``None``."""
        key = name.strip().casefold()
        with self._lock:
            return next((c for c in self._classes if c.name.casefold() == key), None)

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready list."""
        return [c.to_dict() for c in self.classes]

    # ----------------------------------------------------------------- changes
    def add(self, name: str, colour: Optional[str] = None) -> ObjectClass:
        """A new class at the end of the list; ``ValueError`` when the name exists already."""
        text = check_class_name(name)
        with self._lock:
            existing = self.find(text)
            if existing is not None:
                raise ValueError(f"class {text!r} exists already (as {existing.name!r})")
            entry = ObjectClass(self._next_id, text, _check_colour(colour) if colour is not None
                                else PALETTE[(self._next_id - 1) % len(PALETTE)])
            self._classes.append(entry)
            self._next_id += 1
            self._save()
            return entry

    def ensure(self, name: str) -> ObjectClass:
        """The class named ``name``, added when missing."""
        with self._lock:
            return self.find(check_class_name(name)) or self.add(name)

    def extend(self, names: Iterable[str]) -> list[ObjectClass]:
        """Add the names that are missing (in order); returns the classes added."""
        with self._lock:
            return [self.add(n) for n in dict.fromkeys(check_class_name(n) for n in names) if self.find(n) is None]

    def update(self, class_id: int, name: Optional[str] = None, colour: Optional[str] = None) -> ObjectClass:
        """Rename and/or recolour a class; ``KeyError`` when unknown, ``ValueError`` on a clash."""
        with self._lock:
            index = next((i for i, c in enumerate(self._classes) if c.id == class_id), None)
            if index is None:
                raise KeyError(f"no class with id {class_id}")
            old = self._classes[index]
            new_name = old.name if name is None else check_class_name(name)
            clash = self.find(new_name)
            if clash is not None and clash.id != class_id:
                raise ValueError(f"class {new_name!r} exists already (as {clash.name!r})")
            entry = ObjectClass(class_id, new_name, old.colour if colour is None else _check_colour(colour))
            self._classes[index] = entry
            self._save()
            return entry

    def remove(self, class_id: int) -> None:
        """Drop a class (the caller checks that no object uses it); ``KeyError`` when unknown."""
        with self._lock:
            if self.get(class_id) is None:
                raise KeyError(f"no class with id {class_id}")
            self._classes = [c for c in self._classes if c.id != class_id]
            self._save()

    def _save(self) -> None:
        atomic_write_json(self.path, {"format": FORMAT, "version": 1, "next_id": self._next_id,
                                      "classes": [c.to_dict() for c in self._classes]})
