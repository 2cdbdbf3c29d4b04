"""Display copies and tiles: a large photo is sent as a JPEG of long side 2048, not as a full-size PNG;
tiles give the full-resolution pixels back; small lossless images are sent exactly; masks, prompts
and exports stay at full resolution."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from clicksam.images import read_image
from clicksam.io import rle_to_mask
from clicksam.server.display import TILE_SIZE, display_size, pyramid_levels
from tests.server.conftest import make_app


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients with a little noise: compresses like a photo."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 200, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 200, height, dtype=np.float32)[:, None]
    base = np.stack(np.broadcast_arrays(x + 0 * y, y + 0 * x, (x + y) / 2), axis=-1).astype(np.int16)
    return np.clip(base + rng.integers(-6, 7, base.shape, dtype=np.int16), 0, 255).astype(np.uint8)


def _decoded(response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("display")
    Image.fromarray(_photo(1500, 4500)).save(folder / "wide.png", compress_level=1)  # lossless, 2.2x the copy
    Image.fromarray(_photo(2000, 1000, 1)).save(folder / "tall.jpg", quality=92)
    Image.fromarray(_photo(60, 80, 2)).save(folder / "small.png")
    Image.fromarray(_photo(60, 80, 3)).save(folder / "small.jpg", quality=92)
    return folder


@pytest.fixture
def folder(originals, tmp_path):
    import shutil

    return shutil.copytree(originals, tmp_path / "images")


def test_sizes_and_levels():
    assert display_size(8000, 6000, 2048) == (2048, 1536) and display_size(600, 400, 2048) == (600, 400)
    assert pyramid_levels(8000, 2048) == 2 and pyramid_levels(4096, 2048) == 1 and pyramid_levels(600, 600) == 0


def test_a_large_image_is_a_display_copy_with_full_resolution_tiles(folder):
    from fastapi.testclient import TestClient

    full = read_image(folder / "wide.png")
    with TestClient(make_app(folder)) as client:
        shown = client.get("/api/annotation", params={"name": "wide.png"}).json()
        assert (shown["width"], shown["height"]) == (4500, 1500)  # masks and prompts: full resolution
        assert shown["display"] == {"width": 2048, "height": 683} and shown["tiles"] == {"size": TILE_SIZE, "levels": 2}
        copy = client.get("/api/image", params={"name": "wide.png", "v": shown["version"]})
        assert copy.headers["content-type"] == "image/jpeg" and "immutable" in copy.headers["cache-control"]
        assert _decoded(copy).shape == (683, 2048, 3) and len(copy.content) < full.nbytes / 20
        reduced = np.asarray(Image.fromarray(full).resize((2048, 683), Image.Resampling.BOX)).astype(int)
        assert np.abs(_decoded(copy).astype(int) - reduced).mean() < 4  # the image, smaller
        last_col = math.ceil(4500 / TILE_SIZE) - 1
        for col, row in ((0, 0), (3, 1), (last_col, 2)):
            tile = client.get("/api/tile", params={"name": "wide.png", "level": 0, "col": col, "row": row})
            assert tile.headers["content-type"] == "image/png"  # a lossless file: exact pixels
            expected = full[row * TILE_SIZE:(row + 1) * TILE_SIZE, col * TILE_SIZE:(col + 1) * TILE_SIZE]
            assert np.array_equal(_decoded(tile), expected)
        half = client.get("/api/tile", params={"name": "wide.png", "level": 1, "col": 1, "row": 0})
        assert half.headers["content-type"] == "image/jpeg"
        expected = np.asarray(Image.fromarray(full).reduce(2))[:TILE_SIZE, TILE_SIZE:2 * TILE_SIZE].astype(int)
        assert np.abs(_decoded(half).astype(int) - expected).mean() < 3
        for params in ({"level": 2, "col": 0, "row": 0}, {"level": 0, "col": last_col + 1, "row": 0},
                       {"level": 0, "col": 0, "row": 3}):
            refused = client.get("/api/tile", params={"name": "wide.png", **params})
            assert refused.status_code == 422 and "tile" in refused.json()["detail"]
        obj = client.post("/api/objects", json={"image": "wide.png"}).json()
        clicked = client.post("/api/click", json={"image": "wide.png", "object": obj["id"], "x": 4400, "y": 1400})
        assert clicked.status_code == 200 and clicked.json()["mask"]["size"] == [1500, 4500]
        coco = client.get("/api/export", params={"format": "coco"}).json()
        assert rle_to_mask(coco["annotations"][0]["segmentation"]).shape == (1500, 4500)


def test_a_large_jpeg_has_jpeg_tiles(folder):
    from fastapi.testclient import TestClient

    with TestClient(make_app(folder)) as client:
        shown = client.get("/api/annotation", params={"name": "tall.jpg"}).json()
        assert shown["display"] == {"width": 1000, "height": 2000} and shown["tiles"]["levels"] == 0
        copy = client.get("/api/image", params={"name": "tall.jpg"})
        assert copy.headers["content-type"] == "image/jpeg" and _decoded(copy).shape == (2000, 1000, 3)
        refused = client.get("/api/tile", params={"name": "tall.jpg", "level": 0, "col": 0, "row": 0})
        assert refused.status_code == 422 and "no tiles" in refused.json()["detail"]


def test_small_images_are_sent_whole(folder):
    from fastapi.testclient import TestClient

    with TestClient(make_app(folder)) as client:
        png = client.get("/api/image", params={"name": "small.png"})
        assert png.headers["content-type"] == "image/png" and "no-cache" in png.headers["cache-control"]
        assert np.array_equal(_decoded(png), read_image(folder / "small.png"))
        jpeg = client.get("/api/image", params={"name": "small.jpg"})
        assert jpeg.headers["content-type"] == "image/jpeg"
        assert np.abs(_decoded(jpeg).astype(int) - read_image(folder / "small.jpg")).mean() < 3


def test_a_changed_file_gets_a_new_version_and_new_pixels(folder):
    import os

    from fastapi.testclient import TestClient

    with TestClient(make_app(folder)) as client:
        first = client.get("/api/annotation", params={"name": "small.png"}).json()["version"]
        Image.fromarray(_photo(60, 80, 9)).save(folder / "small.png")
        os.utime(folder / "small.png", ns=(1, 1))
        second = client.get("/api/annotation", params={"name": "small.png"}).json()["version"]
        assert first != second
        assert np.array_equal(_decoded(client.get("/api/image", params={"name": "small.png"})),
                              read_image(folder / "small.png"))
