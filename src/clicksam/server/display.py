"""What the page is sent of an image: a display copy no larger than needed, and tiles when zoomed in.

The *display copy* is the image as the model sees it (:func:`clicksam.images.read_image`, EXIF
orientation applied), downscaled to a long side of at most ``max_side`` (2048) pixels: a PNG when it
is the image itself and the file is lossless (the pixels exactly), a JPEG otherwise. Zoomed in past
its resolution, the page asks for *tiles* of a pyramid: level ``L`` is the image reduced by ``2**L``
(box filter), cut into ``tile_size`` × ``tile_size`` tiles; only the levels finer than the display
copy exist, and level-0 tiles of a lossless file are PNG. Masks and exports are not affected: they
stay at full resolution.

Each file is decoded once per version (modification time and size), which validates it: an
unreadable file is known, with its reason, from the first request about it (422 every time after).
The decoded pixels are kept in a small least-recently-used memory (bounded in bytes), shared with
the encoding worker, so a file is decoded once for the page, the tiles and the encoder.
"""
from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from clicksam.server.errors import BadInput, UnreadableImage
from clicksam.server.images import ImageFolder

__all__ = ["DisplayImages", "ImageInfo", "MAX_DISPLAY_SIDE", "TILE_SIZE"]

MAX_DISPLAY_SIDE = 2048
TILE_SIZE = 512
LOSSLESS_FORMATS = frozenset({"PNG", "BMP", "TIFF", "GIF", "PPM", "TGA"})
JPEG_QUALITY = 90


@dataclass(frozen=True)
class ImageInfo:
    """An image as the page sees it.

    width, height: the image (EXIF orientation applied), the frame of masks and prompts.
    display_width, display_height: the display copy (the same when the image is small enough).
    levels: tile pyramid levels ``0 .. levels - 1`` (0 = full resolution); 0 when the display copy
        is the image itself.
    lossless: whether the file is lossless (its display copy at full size and level-0 tiles are PNG).
    version: ``"<mtime ns>-<bytes>"`` of the file: URLs carry it so a changed file is fetched again.
    """

    width: int
    height: int
    display_width: int
    display_height: int
    levels: int
    lossless: bool
    version: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the page (``display`` and ``tiles`` beside the size)."""
        return {"display": {"width": self.display_width, "height": self.display_height},
                "tiles": {"size": TILE_SIZE, "levels": self.levels}, "version": self.version}


def display_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) of the display copy: the image scaled to a long side of at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def pyramid_levels(width: int, display_width: int) -> int:
    """How many tile levels are finer than the display copy (level L reduces by 2**L)."""
    factor = width / display_width
    return sum(1 for level in range(32) if 2 ** level < factor - 1e-9)


def _encode(pixels: np.ndarray, png: bool) -> tuple[bytes, str]:
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if png:
        image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue(), "image/png"
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), "image/jpeg"


@dataclass
class _Entry:
    version: tuple[int, int]
    info: Optional[ImageInfo]
    error: Optional[str]


class _ByteLRU:
    """name -> value, least recently used first out when the values' bytes exceed ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: Any) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: Any, value: Any, size: int) -> None:
        old = self._items.pop(key, None)
        self._bytes -= old[1] if old is not None else 0
        self._items[key] = (value, size)
        self._bytes += size
        while self._bytes > self.capacity and len(self._items) > 1:
            _, (_, freed) = self._items.popitem(last=False)
            self._bytes -= freed


class DisplayImages:
    """Display copies, tiles and validated sizes of the images of ``folder``.

    Args:
        folder: the served images.
        max_side: the display copy's longest side.
        memory_bytes: decoded pixels kept in memory (full images and pyramid levels).
        display_bytes: encoded display copies kept in memory.
    """

    def __init__(self, folder: ImageFolder, max_side: int = MAX_DISPLAY_SIDE, memory_bytes: int = 512 << 20,
                 display_bytes: int = 128 << 20) -> None:
        self.folder, self.max_side = folder, max_side
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._entries: dict[str, _Entry] = {}
        self._pixels = _ByteLRU(memory_bytes)
        self._copies = _ByteLRU(display_bytes)

    def _lock(self, name: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(name, threading.RLock())

    def _entry(self, name: str) -> _Entry:
        version = self.folder.version(name)
        with self._lock(name):
            entry = self._entries.get(name)
            if entry is not None and entry.version == version:
                return entry
            try:
                pixels = self.folder.read(name)
            except UnreadableImage as exc:
                entry = _Entry(version, None, exc.message)
            else:
                entry = _Entry(version, self._describe(name, pixels, version), None)
                self._keep((name, version, 0), pixels)
            self._entries[name] = entry
            return entry

    def _describe(self, name: str, pixels: np.ndarray, version: tuple[int, int]) -> ImageInfo:
        from PIL import Image

        height, width = pixels.shape[:2]
        display_width, display_height = display_size(width, height, self.max_side)
        with Image.open(self.folder.resolve(name)) as image:
            lossless = image.format in LOSSLESS_FORMATS
        return ImageInfo(width, height, display_width, display_height, pyramid_levels(width, display_width),
                         lossless, f"{version[0]}-{version[1]}")

    def _keep(self, key: tuple[Any, ...], pixels: np.ndarray) -> None:
        with self._guard:
            self._pixels.put(key, pixels, pixels.nbytes)

    def _readable(self, name: str) -> _Entry:
        entry = self._entry(name)
        if entry.info is None:
            raise UnreadableImage(entry.error or f"image {name!r} cannot be read")
        return entry

    def info(self, name: str) -> ImageInfo:
        """The image's size and display description; the file is decoded once per version.

        Raises:
            NotFound: no such image. UnreadableImage: the file cannot be used (the reason, every time).
        """
        return self._readable(name).info  # type: ignore[return-value]

    def pixels(self, name: str, level: int = 0) -> np.ndarray:
        """The image (level 0: H×W×3 uint8 RGB as :func:`clicksam.images.read_image` gives it) or a
        pyramid level (reduced by ``2**level``)."""
        version = self._readable(name).version
        with self._lock(name):
            with self._guard:
                kept = self._pixels.get((name, version, level))
            if kept is not None:
                return kept
            if level == 0:
                pixels = self.folder.read(name)
            else:
                from PIL import Image

                pixels = np.asarray(Image.fromarray(self.pixels(name, 0)).reduce(2 ** level))
            self._keep((name, version, level), pixels)
            return pixels

    def display(self, name: str) -> tuple[bytes, str]:
        """The display copy: ``(encoded bytes, media type)``."""
        from PIL import Image

        info = self.info(name)
        with self._guard:
            kept = self._copies.get((name, info.version))
        if kept is not None:
            return kept
        pixels = self.pixels(name)
        full = (info.display_width, info.display_height) == (info.width, info.height)
        if not full:
            pixels = np.asarray(Image.fromarray(pixels).resize((info.display_width, info.display_height),
                                                               Image.Resampling.LANCZOS, reducing_gap=3.0))
        encoded = _encode(pixels, png=full and info.lossless)
        with self._guard:
            self._copies.put((name, info.version), encoded, len(encoded[0]))
        return encoded

    def tile(self, name: str, level: int, col: int, row: int) -> tuple[bytes, str]:
        """Tile ``(col, row)`` of pyramid level ``level``: level pixels ``[col*T, (col+1)*T) ×
        [row*T, (row+1)*T)`` (T = ``TILE_SIZE``, cut at the level's edge), i.e. image pixels
        ``2**level`` times those. ``(encoded bytes, media type)``.

        Raises:
            BadInput: a level the image has not (its display copy is as fine) or a tile outside it.
        """
        info = self.info(name)
        if not 0 <= level < info.levels:
            raise BadInput(f"image {name!r} has tile levels 0-{info.levels - 1}, got {level}" if info.levels else
                           f"image {name!r} has no tiles: its display copy is the full image")
        width, height = math.ceil(info.width / 2 ** level), math.ceil(info.height / 2 ** level)
        cols, rows = math.ceil(width / TILE_SIZE), math.ceil(height / TILE_SIZE)
        if not (0 <= col < cols and 0 <= row < rows):
            raise BadInput(f"tile ({col}, {row}) is outside level {level} of image {name!r} ({cols}x{rows} tiles)")
        pixels = self.pixels(name, level)
        crop = pixels[row * TILE_SIZE:(row + 1) * TILE_SIZE, col * TILE_SIZE:(col + 1) * TILE_SIZE]
        return _encode(crop, png=info.lossless and level == 0)
