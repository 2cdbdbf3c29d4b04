"""Reading and validating the images users give us.

:func:`read_image` is the one reader of image files: EXIF orientation applied (as viewers show the
photo) on user-facing paths, stored pixels for dataset readers, and one exception type,
:class:`ImageReadError`, for every file that cannot be used.
"""
from __future__ import annotations

import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


def as_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an image and return it as a contiguous H×W×3 uint8 array.

    Grayscale (H×W or H×W×1) and RGBA (H×W×4) are converted with a warning. Float, 16-bit and
    empty images are rejected with a message that says how to convert them.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array of shape HxWx3 (uint8 RGB), got {type(image).__name__}")
    if image.size == 0 or image.ndim < 2 or min(image.shape[:2]) == 0:
        raise ValueError(f"{name} is empty (shape {image.shape}); give an HxWx3 uint8 RGB image")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating):
            raise ValueError(
                f"{name} has dtype {image.dtype}; SAM expects uint8 0-255. Convert explicitly, e.g. "
                "(np.clip(img, 0, 1) * 255).round().astype(np.uint8) for a 0-1 float image"
            )
        if image.dtype in (np.uint16, np.int32, np.int64, np.uint32):
            raise ValueError(
                f"{name} has dtype {image.dtype} (16-bit or wider); SAM expects uint8. Convert explicitly, "
                "e.g. (img / 257).round().astype(np.uint8) for a 16-bit image"
            )
        raise ValueError(f"{name} has dtype {image.dtype}; give an HxWx3 uint8 RGB image")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        warnings.warn(f"{name} is grayscale; replicating it to 3 channels", stacklevel=2)
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        warnings.warn(f"{name} is RGBA; dropping the alpha channel", stacklevel=2)
        image = image[..., :3]
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} has shape {image.shape}; give an HxWx3 uint8 RGB image")
    return np.ascontiguousarray(image)


MAX_PIXELS_ENV = "CLICKSAM_MAX_IMAGE_PIXELS"
# About 179 MP (e.g. 16000x11000; 537 MB as RGB): Pillow's own decompression-bomb limit
# (2 x Image.MAX_IMAGE_PIXELS), so the default leaves Pillow's settings untouched.
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970
ORIENTATION_TAG = 0x0112  # EXIF orientation; 5-8 swap width and height
_MODES_16_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


class ImageReadError(ValueError):
    """An image file that cannot be used: ``path``, ``reason`` (what is wrong) and ``fix`` (what to do).

    One type for every unreadable file (not an image, truncated, too many pixels, unsupported mode),
    so callers catch one exception; ``str(error)`` is one line naming the file, the reason and the fix.
    """

    def __init__(self, path: Union[str, Path], reason: str, fix: str) -> None:
        self.path = Path(path)
        self.reason = reason
        self.fix = fix
        super().__init__(f"cannot read image {self.path}: {reason}; {fix}")


def max_image_pixels() -> int:
    """The pixel limit of :func:`read_image`: ``$CLICKSAM_MAX_IMAGE_PIXELS``, else 178,956,970."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "").replace(",", "")
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{MAX_PIXELS_ENV} must be a positive whole number of pixels, "
                         f"got {os.environ[MAX_PIXELS_ENV]!r}")
    return int(text)


@contextmanager
def _open(path: Path, limit: int) -> Iterator[Image.Image]:
    """Open ``path`` (header only), refusing more than ``limit`` pixels before any decoding."""
    # Pillow refuses images over 2 x Image.MAX_IMAGE_PIXELS on its own; ours is the limit that
    # counts, so Pillow's is raised to match when a caller allows more (it is never lowered).
    if Image.MAX_IMAGE_PIXELS is not None and limit > 2 * Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit // 2 + 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except UnidentifiedImageError:
        raise ImageReadError(path, "it is not an image file Pillow can read (unknown format, empty or corrupt)",
                             "give a JPEG, PNG, BMP, TIFF or WebP file") from None
    except Image.DecompressionBombError as exc:  # over Pillow's limit, hence over ours: say it our way
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or limit)  # lower than ours if someone lowered Pillow's
        raise _too_many_pixels(path, f"{int(found.group(1)):,} pixels" if found else "too many pixels",
                               min(limit, pillow_limit)) from None
    except OSError as exc:
        raise _corrupt(path, exc) from None
    with img:
        if img.width * img.height > limit:
            raise _too_many_pixels(path, f"{img.width * img.height:,} pixels ({img.width}x{img.height})", limit)
        yield img


def _corrupt(path: Path, exc: Exception) -> ImageReadError:
    return ImageReadError(path, f"the file is truncated or corrupt ({exc})", "re-export or re-download it")


def _too_many_pixels(path: Path, found: str, limit: int) -> ImageReadError:
    return ImageReadError(path, f"it has {found}, over the limit of {limit:,} pixels (a decompression bomb?)",
                          f"downscale it, or raise the limit with {MAX_PIXELS_ENV}=N (Python: max_pixels=N) "
                          "if you trust the file")


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block: the pixels are still good, shown as stored
        return 1


def read_image_size(path: Union[str, Path], *, exif_orientation: bool = True) -> tuple[int, int]:
    """``(width, height)`` of an image file as :func:`read_image` returns it, from the header only.

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: not an image, or over the pixel limit.
    """
    path = _existing(path)
    with _open(path, max_image_pixels()) as img:
        width, height = img.size
        if exif_orientation and _orientation(img) in (5, 6, 7, 8):
            width, height = height, width
    return width, height


def read_exif_orientation(path: Union[str, Path]) -> int:
    """The EXIF orientation tag of an image file (1-8; 1 when absent or unreadable): how
    :func:`read_image` turns the stored pixels (5-8 swap width and height).

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: not an image, or over the pixel limit.
    """
    path = _existing(path)
    with _open(path, max_image_pixels()) as img:
        orientation = _orientation(img)
    return orientation if orientation in range(1, 9) else 1


def read_image(path: Union[str, Path], *, exif_orientation: bool = True,
               max_pixels: Optional[int] = None) -> np.ndarray:
    """Read an image file as H×W×3 uint8 RGB, the one way clicksam reads images.

    Args:
        path: the file.
        exif_orientation: apply the EXIF orientation tag, as every image viewer does (the default,
            for every user-facing path: segment, embed, serve, demo). Benchmark and training dataset
            readers pass False: their masks were drawn on the stored pixels, which stay as they are.
        max_pixels: refuse images with more pixels than this, before decoding them (a decompression
            bomb); default ``$CLICKSAM_MAX_IMAGE_PIXELS`` or 178,956,970 (Pillow's own limit).

    Modes: grayscale, palette, RGBA (alpha dropped), CMYK (Pillow's conversion, no colour profile)
    become RGB; 16-bit images keep their high byte (value / 256), as browsers show them; 32-bit
    integer and float images are refused (no standard 8-bit view: convert them yourself).

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: not an image, truncated or corrupt, over the pixel limit, or an unsupported mode.
    """
    path = _existing(path)
    limit = max_image_pixels() if max_pixels is None else int(max_pixels)
    with _open(path, limit) as img:
        if img.mode in ("I", "F") and not (img.mode == "I" and img.format == "PNG"):
            raise ImageReadError(path, f"it is a {'32-bit integer' if img.mode == 'I' else 'floating-point'} image",
                                 "convert it to 8-bit RGB first, choosing how its values map to 0-255")
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise _corrupt(path, exc) from None
        if exif_orientation and _orientation(img) != 1:
            img = ImageOps.exif_transpose(img)
        return _to_rgb(img)


def _existing(path: Union[str, Path]) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    return path


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in _MODES_16_BIT or img.mode == "I":  # "I" here: a 16-bit PNG on older Pillow
        high = (np.asarray(img).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(high[..., None], 3, axis=2))
    return np.asarray(img.convert("RGB"))


def image_digest(image: np.ndarray) -> str:
    """sha256 of an image's shape and pixels (the embedding cache's content key)."""
    import hashlib

    h = hashlib.sha256()
    h.update(repr((image.shape, str(image.dtype))).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()
