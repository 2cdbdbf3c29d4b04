"""Common parts of the evaluation dataset loaders: the object record, file matching, decoding checks.

Every loader lists :class:`EvalObject` records (one per object to segment, in a fixed order) and
decodes an object's ground truth into an HxW ``int8`` array: 1 object, 0 background, -1 ignore.
Images are read by :func:`clicksam.images.read_image` without EXIF rotation (the pixels RITM's
OpenCV decoding gives on the benchmark sets) and returned as HxWx3 ``uint8`` RGB.
"""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

__all__ = [
    "DatasetError", "EvalObject", "EvalDataset", "IMAGE_EXTENSIONS", "MASK_EXTENSIONS",
    "read_image_rgb", "read_mask_array", "match_by_stem", "require_dir",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".gif")


class DatasetError(ValueError):
    """A dataset folder or file is missing, unreadable or inconsistent (the message names it)."""


@dataclass(frozen=True)
class EvalObject:
    """One object to segment.

    Attributes:
        object_id: unique, stable key within the dataset (the resumable runner's key).
        image_id: key of the image; objects with the same ``image_path`` share one encoder pass.
        image_path: the image file.
        mask_path: the annotation file.
        instance: the instance id inside a multi-instance annotation (SBD, PascalVOC), else None.
    """

    object_id: str
    image_id: str
    image_path: Path
    mask_path: Path
    instance: int | None = None


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a folder, else raise :class:`DatasetError` naming it."""
    if not path.is_dir():
        raise DatasetError(f"{what} folder not found: {path}")
    return path


def _files_by_stem(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in extensions or path.name.startswith("."):
            continue
        if path.stem in found:
            raise DatasetError(f"two files share the stem {path.stem!r} in {folder}: "
                               f"{found[path.stem].name} and {path.name}; keep one")
        found[path.stem] = path
    return found


def match_by_stem(images_dir: Path, masks_dir: Path,
                  image_extensions: Sequence[str] = IMAGE_EXTENSIONS,
                  mask_extensions: Sequence[str] = MASK_EXTENSIONS) -> list[tuple[str, Path, Path]]:
    """Pair images and masks by file stem, sorted by stem.

    Returns:
        ``[(stem, image_path, mask_path), ...]``.

    Raises:
        DatasetError: a folder is missing or empty, an image has no mask, or a mask has no image.
    """
    images = _files_by_stem(require_dir(images_dir, "image"), image_extensions)
    masks = _files_by_stem(require_dir(masks_dir, "mask"), mask_extensions)
    if not images:
        raise DatasetError(f"no images ({', '.join(image_extensions)}) in {images_dir}")
    missing = sorted(set(images) - set(masks))
    if missing:
        raise DatasetError(f"image {images[missing[0]]} has no mask in {masks_dir} "
                           f"({len(missing)} image(s) without a mask)")
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise DatasetError(f"mask {masks[orphans[0]]} has no image in {images_dir} "
                           f"({len(orphans)} mask(s) without an image)")
    return [(stem, images[stem], masks[stem]) for stem in sorted(images)]


def read_image_rgb(path: Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB, as stored: no EXIF rotation, since the masks were drawn
    on the stored pixels (the same pixels as RITM's OpenCV decoding on the benchmark sets).

    Raises:
        DatasetError: the file is missing.
        clicksam.images.ImageReadError: the file cannot be decoded (the message says why).
    """
    from clicksam.images import read_image

    if not path.is_file():
        raise DatasetError(f"image file not found: {path}")
    return read_image(path, exif_orientation=False)


@functools.lru_cache(maxsize=4)
def _read_mask_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as pil:
            if pil.mode == "P":
                array = np.array(pil)  # palette indices, not colours
                array.setflags(write=False)
                return array
    except (OSError, ValueError):
        pass  # not a format PIL knows (or broken): let OpenCV try and report
    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DatasetError(f"cannot decode mask file {path}")
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    array.setflags(write=False)
    return array


def read_mask_array(path: Path) -> np.ndarray:
    """Read an annotation image without colour conversion (read-only array).

    Palette PNGs give their HxW palette indices; gray files HxW; colour files HxWx3 in BGR order
    (OpenCV's), alpha dropped.
    """
    if not path.is_file():
        raise DatasetError(f"mask file not found: {path}")
    stat = path.stat()
    return _read_mask_cached(str(path), stat.st_mtime_ns, stat.st_size)


class EvalDataset(ABC):
    """A list of objects with their images and ground truths.

    Subclasses implement :meth:`_list_objects` and :meth:`decode_gt`.
    """

    name: str = "dataset"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._objects: list[EvalObject] | None = None

    @abstractmethod
    def _list_objects(self) -> list[EvalObject]:
        """All objects in evaluation order."""

    @abstractmethod
    def decode_gt(self, obj: EvalObject) -> np.ndarray:
        """The raw decoding of ``obj``'s annotation: HxW int8, 1 object / 0 background / -1 ignore."""

    @property
    def objects(self) -> list[EvalObject]:
        """The objects in evaluation order (listed once, then cached)."""
        if self._objects is None:
            self._objects = self._list_objects()
            ids = [o.object_id for o in self._objects]
            if len(set(ids)) != len(ids):
                raise DatasetError(f"duplicate object ids in {self.name} at {self.root}")
        return self._objects

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[EvalObject]:
        return iter(self.objects)

    def load_image(self, obj: EvalObject) -> np.ndarray:
        """HxWx3 uint8 RGB image of ``obj``."""
        return read_image_rgb(obj.image_path)

    def load_gt(self, obj: EvalObject, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Ground truth of ``obj`` (HxW int8), checked against the image size and for emptiness.

        Args:
            obj: the object.
            image_shape: the image's shape (H, W, ...) when already loaded; read from disk otherwise.

        Raises:
            DatasetError: the mask size differs from the image size, or the object is empty.
        """
        gt = self.decode_gt(obj)
        if image_shape is None:
            image_shape = self.load_image(obj).shape
        if gt.shape != tuple(image_shape[:2]):
            raise DatasetError(f"mask {obj.mask_path} is {gt.shape[1]}x{gt.shape[0]} (WxH) but image "
                               f"{obj.image_path} is {image_shape[1]}x{image_shape[0]}")
        if not np.any(gt == 1):
            raise DatasetError(f"object {obj.object_id!r} is empty in mask {obj.mask_path}")
        return gt

    def load(self, obj: EvalObject) -> tuple[np.ndarray, np.ndarray]:
        """``(image HxWx3 uint8 RGB, gt HxW int8)`` of ``obj``."""
        image = self.load_image(obj)
        return image, self.load_gt(obj, image.shape)


def gray_channel(array: np.ndarray, path: Path, channel: int = 0) -> np.ndarray:
    """One channel of a mask array (``channel`` of OpenCV's BGR order for colour files)."""
    if array.ndim == 2:
        return array
    if array.ndim == 3:
        return array[:, :, channel]
    raise DatasetError(f"mask {path} has unexpected shape {array.shape}")


def max_channel(array: np.ndarray) -> np.ndarray:
    """The maximum over colour channels (RITM's DAVIS decoding); a 2-D array is returned as is."""
    return array if array.ndim == 2 else array.max(axis=2)
