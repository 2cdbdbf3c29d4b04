"""Fixtures of the Label Studio backend tests: a backend on the tiny model and request builders."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import pytest
from PIL import Image

from clicksam.commands.demo import EXAMPLES  # the package's example photos
from clicksam.labelstudio.cli import config_text


@pytest.fixture
def document_root(tmp_path: Path) -> Path:
    """A local-files document root holding coffee.jpg (600x400), a broken file and a PNG."""
    root = tmp_path / "files"
    (root / "photos").mkdir(parents=True)
    shutil.copy(EXAMPLES / "coffee.jpg", root / "photos" / "coffee.jpg")
    (root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    image = np.zeros((50, 70, 3), np.uint8)
    image[10:40, 20:50] = (250, 200, 30)
    Image.fromarray(image).save(root / "square.png")
    return root


def make_backend(model: Any, document_root: Optional[Path] = None, method: str = "sam", **kwargs: Any) -> Any:
    """A LabelStudioBackend on ``model`` reading local files under ``document_root``."""
    from clicksam.cache import EmbeddingCache
    from clicksam.labelstudio.backend import LabelStudioBackend
    from clicksam.labelstudio.images import ImageResolver
    from clicksam.labelstudio.sessions import TaskSessions

    images = kwargs.pop("images", None) or ImageResolver(document_root=document_root)
    sessions = TaskSessions(model, method, EmbeddingCache(None), max_tasks=kwargs.pop("max_tasks", 4),
                            allow_untrained=kwargs.pop("allow_untrained", False))
    return LabelStudioBackend(sessions, images, "clicksam-test", kwargs.pop("negative_labels", ["Negative"]))


@pytest.fixture
def backend(tiny_model, document_root):
    return make_backend(tiny_model, document_root)


@pytest.fixture
def client(backend) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from clicksam.labelstudio.app import create_app

    with TestClient(create_app(backend), raise_server_exceptions=False) as test_client:
        yield test_client


def keypoint(region_id: str, x: float, y: float, size: tuple[int, int] = (600, 400), label: str = "Object",
             positive: Optional[bool] = True, control: str = "click") -> dict[str, Any]:
    """A keypoint region as Label Studio serialises it, at *pixel* (x, y) of a W×H image (its centre)."""
    width, height = size
    region = {"id": region_id, "from_name": control, "to_name": "image", "type": "keypointlabels",
              "original_width": width, "original_height": height, "image_rotation": 0,
              "value": {"x": (x + 0.5) / width * 100, "y": (y + 0.5) / height * 100, "width": 0.4,
                        "keypointlabels": [label]}}
    if positive is not None:
        region["is_positive"] = positive
    return region


def rectangle(region_id: str, box: tuple[float, float, float, float], size: tuple[int, int] = (600, 400),
              label: str = "Object") -> dict[str, Any]:
    """A rectangle region for the box (x0, y0, x1, y1) in pixels (edges) of a W×H image."""
    width, height = size
    x0, y0, x1, y1 = box
    return {"id": region_id, "from_name": "box", "to_name": "image", "type": "rectanglelabels",
            "original_width": width, "original_height": height, "image_rotation": 0,
            "value": {"x": x0 / width * 100, "y": y0 / height * 100, "width": (x1 - x0) / width * 100,
                      "height": (y1 - y0) / height * 100, "rotation": 0, "rectanglelabels": [label]}}


def predict_body(regions: list[dict[str, Any]], task_id: int = 1, image: str = "/data/local-files/?d=photos/coffee.jpg",
                 config: Optional[str] = None) -> dict[str, Any]:
    """A /predict request as Label Studio sends it in interactive mode."""
    return {"tasks": [{"id": task_id, "data": {"image": image}}], "project": "3.1700000000",
            "label_config": config or config_text(),
            "params": {"login": None, "password": None, "context": {"result": regions}}}
