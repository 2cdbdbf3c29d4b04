"""The served image folder: listing, safe name resolution (no path traversal), reading."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path, PurePosixPath

import numpy as np

from clicksam.server.errors import BadInput, NotFound, UnreadableImage

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "unreadable"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
MAX_NAME_LENGTH = 1024


def _natural_key(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class ImageFolder:
    """The images under ``root`` (recursively), named by their POSIX path relative to ``root``.

    Hidden files and folders (a name starting with ``.``, e.g. the annotation store) are skipped,
    and so is anything whose real path leaves ``root`` (a symlink pointing outside).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"image folder not found: {path}")
        self.root = path.resolve()
        self._lock = threading.Lock()
        self._names: list[str] = []
        self.rescan()

    def rescan(self) -> list[str]:
        """List the folder again and return the sorted image names."""
        names = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for file in files:
                if file.startswith(".") or Path(file).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                full = Path(folder, file)
                if not full.resolve().is_relative_to(self.root):
                    continue
                names.append(full.relative_to(self.root).as_posix())
        names.sort(key=_natural_key)
        with self._lock:
            self._names = names
        return list(names)

    @property
    def names(self) -> list[str]:
        """The image names found by the last scan."""
        with self._lock:
            return list(self._names)

    @staticmethod
    def check_name(name: object) -> str:
        """Validate the form of an image name; raises :class:`BadInput` for traversal attempts."""
        if not isinstance(name, str) or not name:
            raise BadInput("image name must be a non-empty string")
        if len(name) > MAX_NAME_LENGTH or "\x00" in name or "\\" in name:
            raise BadInput("image name is too long or holds forbidden characters")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or any(p in ("..", ".") for p in parts) \
                or any(p.startswith(".") for p in parts) or name != PurePosixPath(name).as_posix():
            raise BadInput(f"image name {name!r} must be a plain relative path inside the served folder")
        return name

    def resolve(self, name: object) -> Path:
        """The file of a listed image; :class:`NotFound` when ``name`` is not one of them."""
        checked = self.check_name(name)
        if checked not in self.names and checked not in self.rescan():
            raise NotFound(f"unknown image {checked!r}")
        path = (self.root / checked).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise NotFound(f"unknown image {checked!r}")
        return path

    def neighbours(self, name: str, count: int) -> list[str]:
        """The ``count`` images listed after ``name`` (the prefetch order)."""
        names = self.names
        if name not in names:
            return []
        start = names.index(name) + 1
        return names[start:start + count]

    def read(self, name: str) -> np.ndarray:
        """The image as HxWx3 uint8 RGB, as :func:`clicksam.images.read_image` decodes it (EXIF
        orientation applied); :class:`UnreadableImage` (422) when the file cannot be used."""
        from clicksam.images import read_image

        path = self.resolve(name)
        try:
            return read_image(path)
        except FileNotFoundError as exc:  # removed since it was listed
            raise NotFound(f"unknown image {name!r}") from exc
        except Exception as exc:  # noqa: BLE001 - whatever a decoder raises on a bad file is a 422, never a 500
            raise unreadable(name, exc) from exc

    def version(self, name: str) -> tuple[int, int]:
        """(modification time in ns, size in bytes) of the image's file: a new version means new pixels."""
        stat = self.resolve(name).stat()
        return stat.st_mtime_ns, stat.st_size


def unreadable(name: str, exc: Exception) -> UnreadableImage:
    """The 422 for an image file that :func:`clicksam.images.read_image` refused: the reason and the fix."""
    from clicksam.images import ImageReadError

    if isinstance(exc, ImageReadError):
        return UnreadableImage(f"image {name!r} cannot be read: {exc.reason}; {exc.fix}")
    return UnreadableImage(f"image {name!r} cannot be read ({type(exc).__name__}: {exc}); re-export or replace the file")
