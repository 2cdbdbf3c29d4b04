"""Fixtures of the annotator tests: an image folder and a TestClient on a fake model."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from PIL import Image

from tests.server.fakes import FakeFactory


def write_images(folder: Path, count: int = 3, size: tuple[int, int] = (80, 60)) -> list[str]:
    """PNG images of a bright disk on a dark background; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    names = []
    yy, xx = np.mgrid[:height, :width]
    for index in range(count):
        image = np.full((height, width, 3), 30, np.uint8)
        image[(xx - width // 2) ** 2 + (yy - height // 2) ** 2 <= (min(size) // 4) ** 2] = (240, 200, 40)
        name = f"img{index}.png"
        Image.fromarray(image).save(folder / name)
        names.append(name)
    return names


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    write_images(folder)
    return folder


def make_app(image_dir: Path, factory: Any = None, token: str | None = None, **kwargs: Any) -> Any:
    from clicksam.server.app import create_app
    from clicksam.server.images import ImageFolder
    from clicksam.server.service import AnnotatorService
    from clicksam.server.store import AnnotationStore

    store = AnnotationStore(image_dir / ".clicksam" / "annotations", images=image_dir)
    service = AnnotatorService(ImageFolder(image_dir), store, factory or FakeFactory(),
                               encode_timeout=kwargs.pop("encode_timeout", 10.0))
    return create_app(service, token=token, **kwargs)


@pytest.fixture
def client(image_dir: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(make_app(image_dir)) as test_client:
        yield test_client
