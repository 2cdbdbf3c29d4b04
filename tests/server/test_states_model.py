"""Stored step results with the real (tiny) model and every method stage: after a restart a redo needs
no decode and shows the same mask, the next click is one decode and agrees with the click made
without a restart (up to the float16 storage of the logits), and a method switch decodes nothing."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clicksam.io import runs_to_mask
from clicksam.methods import get_spec, list_methods
from clicksam.pipeline import Pipeline
from tests.methods.test_stage_contract import small_model

METHOD = "+".join(list_methods())
CLICKS = [(20 + (37 * i) % 90, 15 + (23 * i) % 70, i % 4 != 3) for i in range(12)]


@pytest.fixture(scope="module")
def model() -> Any:
    names = list_methods()
    return small_model(names, trained=[n for n in names if get_spec(n).attribute])


def _app(folder: Path, model: Any, cache: Path) -> Any:
    from clicksam.cache import EmbeddingCache
    from clicksam.server.app import create_app
    from clicksam.server.backend import SamSessionFactory
    from clicksam.server.images import ImageFolder
    from clicksam.server.service import AnnotatorService
    from clicksam.server.store import AnnotationStore

    store = AnnotationStore(folder / ".clicksam" / "annotations", images=folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        factory = SamSessionFactory(model, EmbeddingCache(cache))
    return create_app(AnnotatorService(ImageFolder(folder), store, factory, encode_timeout=60))


def _post(client: Any, path: str, **body: Any) -> dict[str, Any]:
    response = client.request("PATCH" if path == "patch" else "POST", "/api/objects" if path == "patch" else path,
                              json={"image": "a.png", **body})
    assert response.status_code == 200, response.text
    return response.json()


def _agree(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Fraction of pixels where two answers' masks differ."""
    return float((runs_to_mask(a["mask"]) != runs_to_mask(b["mask"])).mean())


def test_restart_redo_next_click_and_method_switch_on_the_real_model(tmp_path, model, monkeypatch):
    from fastapi.testclient import TestClient

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    pixels[30:80, 40:100] = (220, 60, 40)
    Image.fromarray(pixels).save(folder / "a.png")
    with TestClient(_app(folder, model, tmp_path / "emb")) as client:
        obj = _post(client, "/api/objects", method=METHOD)["id"]
        for x, y, positive in CLICKS:
            _post(client, "/api/click", object=obj, x=x, y=y, positive=positive)
        without_restart = _post(client, "/api/click", object=obj, x=64, y=50)
        _post(client, "/api/undo", object=obj)
    folder_of_states = folder / ".clicksam/annotations/a.png.states"
    assert folder_of_states.is_dir()

    decodes: list[int] = []
    step = Pipeline.step
    monkeypatch.setattr(Pipeline, "step", lambda self, *a, **k: decodes.append(1) or step(self, *a, **k))
    with TestClient(_app(folder, model, tmp_path / "emb")) as client:
        redone = _post(client, "/api/redo", object=obj)
        assert decodes == [] and _agree(redone, without_restart) < 1e-3
        _post(client, "/api/undo", object=obj)
        after_restart = _post(client, "/api/click", object=obj, x=64, y=50)
        assert decodes == [1] and _agree(after_restart, without_restart) < 0.01
        switched = _post(client, "patch", object=obj, method="sam")
        assert decodes == [1] and switched["mask"] == after_restart["mask"]  # continues from the current mask
        _post(client, "/api/click", object=obj, x=30, y=30, positive=False)
        assert decodes == [1, 1]
