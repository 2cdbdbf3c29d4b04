"""Reading and validating the images users give us."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError


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


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as H×W×3 uint8 RGB (EXIF orientation not applied, as in the benchmarks)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            if img.mode in ("I;16", "I;16B", "I", "F"):
                raise ValueError(f"{path} is a {img.mode} (16-bit/float) image; convert it to 8-bit RGB first")
            return np.asarray(img.convert("RGB"))
    except UnidentifiedImageError as exc:
        raise ValueError(f"{path} is not a readable image file") from exc


def image_digest(image: np.ndarray) -> str:
    """sha256 of an image's shape and pixels (the embedding cache's content key)."""
    import hashlib

    h = hashlib.sha256()
    h.update(repr((image.shape, str(image.dtype))).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()
