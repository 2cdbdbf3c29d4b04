"""Reading user images: EXIF orientation, and one clear error for every file that cannot be used."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clicksam.images import (DEFAULT_MAX_IMAGE_PIXELS, MAX_PIXELS_ENV, ImageReadError, max_image_pixels, read_image,
                             read_image_size)

ORIENTATION = 0x0112


def _pattern(h: int = 20, w: int = 40) -> np.ndarray:
    """An asymmetric RGB pattern: every rotation and flip of it differs."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def _save_with_orientation(path: Path, pixels: np.ndarray, orientation: int, **options) -> Path:
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[ORIENTATION] = orientation
    image.save(path, exif=exif.tobytes(), **options)
    return path


@pytest.mark.parametrize("orientation, expected", [
    (1, lambda a: a),
    (3, lambda a: np.rot90(a, 2)),
    (6, lambda a: np.rot90(a, -1)),  # "rotate 90 CW to display": the usual phone photo held upright
    (8, lambda a: np.rot90(a, 1)),
])
def test_exif_orientation_is_applied_as_viewers_do(tmp_path, orientation, expected):
    raw = _pattern()
    path = _save_with_orientation(tmp_path / f"o{orientation}.png", raw, orientation)
    shown = read_image(path)
    assert np.array_equal(shown, expected(raw))
    assert read_image_size(path) == (shown.shape[1], shown.shape[0])  # (width, height) as displayed


def test_benchmark_readers_keep_the_stored_pixels(tmp_path):
    raw = _pattern()
    path = _save_with_orientation(tmp_path / "phone.jpg", raw, 6, quality=95)
    assert read_image(path).shape == (40, 20, 3)
    assert read_image(path, exif_orientation=False).shape == (20, 40, 3)
    assert read_image_size(path, exif_orientation=False) == (40, 20)


def test_benchmark_decoding_equals_opencv_on_the_shared_sets(shared_dir):
    """The eval datasets read through read_image(exif_orientation=False): the same pixels as
    RITM's OpenCV decoding, so published numbers stay comparable."""
    import cv2

    files = [*sorted((shared_dir / "data/GrabCut/data_GT").iterdir())[:6],
             *sorted((shared_dir / "data/Berkeley/images").iterdir())[:6],
             *sorted((shared_dir / "data/DAVIS/img").iterdir())[:3]]
    for path in files:
        ours = read_image(path, exif_orientation=False)
        ritm = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(ours, ritm), path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height in its header with almost no pixel data (a bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_one_clear_error(tmp_path):
    bomb = _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ImageReadError) as info:
        read_image(bomb)
    message = str(info.value)
    assert str(bomb) in message and "400,000,000 pixels" in message and MAX_PIXELS_ENV in message
    assert info.value.path == bomb and "limit" in info.value.reason


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    Image.fromarray(_pattern(30, 40)).save(path)
    with pytest.raises(ImageReadError, match="1,200 pixels"):
        read_image(path, max_pixels=1000)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    assert max_image_pixels() == 1000
    with pytest.raises(ImageReadError):
        read_image(path)
    assert read_image(path, max_pixels=2000).shape == (30, 40, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=f"{MAX_PIXELS_ENV} must be a positive whole number"):
        read_image(path)
    monkeypatch.delenv(MAX_PIXELS_ENV)
    assert max_image_pixels() == DEFAULT_MAX_IMAGE_PIXELS


def test_a_limit_above_pillows_own_still_reads(tmp_path, monkeypatch):
    """Pillow has its own bomb limit (2 x Image.MAX_IMAGE_PIXELS); ours is the one that counts."""
    path = tmp_path / "big.png"
    Image.fromarray(_pattern(60, 50)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert read_image(path, max_pixels=10_000).shape == (60, 50, 3)
    with pytest.raises(ImageReadError, match="3,000 pixels"):
        read_image(path, max_pixels=2_000)


def test_truncated_file_is_one_clear_error(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(_pattern(64, 64)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated") as info:
        read_image(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"hello, this is not a JPEG\n"])
def test_not_an_image_is_one_clear_error(tmp_path, content):
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match="not an image") as info:
        read_image(path)
    assert info.value.path == path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found"):
        read_image(tmp_path / "absent.png")


def test_16_bit_images_keep_their_high_byte_as_browsers_show_them(tmp_path):
    gray = np.array([[0x0000, 0x12FF], [0x8000, 0xFFFF]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(gray).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    rgb = read_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[..., 0].tolist() == [[0x00, 0x12], [0x80, 0xFF]] and np.all(rgb[..., 0:1] == rgb)


def test_cmyk_is_converted(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (16, 8), (0, 255, 255, 0)).save(path, quality=100)  # pure red ink
    rgb = read_image(path)
    assert rgb.shape == (8, 16, 3) and rgb[..., 0].min() > 200 and rgb[..., 1:].max() < 60


@pytest.mark.parametrize("mode, dtype", [("F", np.float32), ("I", np.int32)])
def test_float_and_32_bit_images_are_refused_with_a_fix(tmp_path, mode, dtype):
    path = tmp_path / f"{mode}.tiff"
    Image.fromarray(np.ones((4, 4), dtype=dtype), mode=mode).save(path)
    with pytest.raises(ImageReadError, match="convert it to 8-bit") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_image_read_error_is_a_value_error():
    assert issubclass(ImageReadError, ValueError)
