"""Stored step results (issue #16, fast history): a restart, undo, redo, an undone reset or delete and
a method switch cost no replay; damaged, missing or foreign stored results are recomputed, never used.

The fake model counts its decodes (``FakeFactory.decodes``) and checks that each step gets its own
stored result back (``FakeSession.restore``); ``test_states_model.py`` runs the real tiny model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clicksam.io import runs_to_mask
from tests.server.conftest import make_app
from tests.server.fakes import FakeFactory

IMAGE = "img0.png"


def _post(client: Any, path: str, **body: Any) -> dict[str, Any]:
    response = client.post(path, json={"image": IMAGE, **body})
    assert response.status_code == 200, response.text
    return response.json()


def _clicks(client: Any, obj: int, count: int, start: int = 0) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    for i in range(start, start + count):
        answer = _post(client, "/api/click", object=obj, x=5 + (7 * i) % 70, y=5 + (5 * i) % 50, positive=i % 3 != 2)
    return answer


def _saved(image_dir: Path) -> dict[str, Any]:
    return json.loads((image_dir / ".clicksam/annotations" / f"{IMAGE}.json").read_text())


def _client(image_dir: Path, factory: FakeFactory) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(make_app(image_dir, factory))


def test_a_restart_costs_one_decode_not_a_replay(image_dir):
    with _client(image_dir, FakeFactory()) as client:
        obj = _post(client, "/api/objects")["id"]
        last = _clicks(client, obj, 40)
    files = list((image_dir / ".clicksam/annotations" / f"{IMAGE}.states").glob("*.safetensors"))
    assert files and all(a["state"]["tensors"] for a in _saved(image_dir)["objects"][0]["actions"])
    factory = FakeFactory()
    with _client(image_dir, factory) as client:
        after = _post(client, "/api/click", object=obj, x=60, y=40)
        assert factory.decodes == 1 and factory.restores == 1  # the new click only
        assert len(after["clicks"]) == 41 and after["mask"] != last["mask"]


def test_undo_redo_reset_delete_and_method_switch_need_no_decode(image_dir):
    factory = FakeFactory()
    with _client(image_dir, factory) as client:
        a = _post(client, "/api/objects")["id"]
        b = _post(client, "/api/objects")["id"]
        views = [_clicks(client, a, 1, start) for start in range(6)]
        _clicks(client, b, 3)
        decodes = factory.decodes
        for expected in reversed(views[:-1]):  # undo is exact and free
            assert _post(client, "/api/undo", object=a)["mask"] == expected["mask"]
        for expected in views[1:]:  # so is redo, from the stored steps
            assert _post(client, "/api/redo", object=a)["mask"] == expected["mask"]
        _post(client, "/api/reset", object=a)
        assert _post(client, "/api/undo")["mask"] == views[-1]["mask"]  # the undone reset
        client.delete("/api/objects", params={"image": IMAGE, "object": b})
        back = _post(client, "/api/undo")
        assert back["id"] == b and len(back["clicks"]) == 3
        switched = client.patch("/api/objects", json={"image": IMAGE, "object": a, "method": "sam-ref"}).json()
        assert switched["method"] == "sam-ref" and switched["mask"] == views[-1]["mask"]  # continues from the mask
        assert factory.decodes == decodes
        assert len(_post(client, "/api/click", object=a, x=70, y=50)["clicks"]) == 7
        assert factory.decodes == decodes + 1
        sessions = client.app.state.service.sessions
        assert sessions.live(IMAGE, a).method == "sam-ref"  # the next click ran the new method


def test_damaged_missing_or_foreign_stored_results_are_recomputed(image_dir):
    with _client(image_dir, FakeFactory()) as client:
        obj = _post(client, "/api/objects")["id"]
        last = _clicks(client, obj, 12)
    folder = image_dir / ".clicksam/annotations" / f"{IMAGE}.states"
    actions = _saved(image_dir)["objects"][0]["actions"]
    damaged = actions[5]["state"]["tensors"]["prompts"]["file"]
    (folder / f"{damaged}.safetensors").write_bytes(b"\0" * 64)
    (folder / f"{actions[8]['state']['tensors']['prompts']['file']}.safetensors").unlink()
    factory = FakeFactory()
    with _client(image_dir, factory) as client:
        shown = _post(client, "/api/undo", object=obj)  # rebuilds the session: steps 6 and 9 recomputed
        assert factory.decodes == 2 and shown["clicks"] == last["clicks"][:-1]
        assert _post(client, "/api/redo", object=obj)["mask"] == last["mask"]
    assert (folder / f"{damaged}.safetensors").read_bytes() != b"\0" * 64  # stored again
    factory = FakeFactory()
    with _client(image_dir, factory) as client:
        _post(client, "/api/undo", object=obj)
        assert factory.decodes == 0
    data = _saved(image_dir)
    for action in data["objects"][0]["actions"]:  # made with another model (or on other pixels)
        action["state"]["key"] = "another-model"
    (image_dir / ".clicksam/annotations" / f"{IMAGE}.json").write_text(json.dumps(data))
    factory = FakeFactory()
    with _client(image_dir, factory) as client:
        _post(client, "/api/click", object=obj, x=1, y=1)
        assert factory.decodes == 11 + 1  # a replay of the 11 current steps, then the click


def test_files_no_step_refers_to_are_removed(image_dir):
    with _client(image_dir, FakeFactory()) as client:
        obj = _post(client, "/api/objects")["id"]
        _clicks(client, obj, 10)
        folder = image_dir / ".clicksam/annotations" / f"{IMAGE}.states"
        count = len(list(folder.glob("*.safetensors")))
        for _ in range(4):
            _post(client, "/api/undo")
        assert len(list(folder.glob("*.safetensors"))) == count  # the redo steps keep theirs
        _post(client, "/api/click", object=obj, x=3, y=3)  # drops the redo steps
        assert len(list(folder.glob("*.safetensors"))) == count - 4 + 1
        client.delete("/api/objects", params={"image": IMAGE, "object": obj})
        assert len(list(folder.glob("*.safetensors"))) == count - 3  # a deleted object can come back


def test_an_annotation_without_stored_results_is_replayed_once(image_dir):
    """Files written before stored results existed: the first use replays, and stores the results."""
    with _client(image_dir, FakeFactory()) as client:
        obj = _post(client, "/api/objects")["id"]
        _clicks(client, obj, 8)
    data = _saved(image_dir)
    for action in data["objects"][0]["actions"]:
        del action["state"]
    (image_dir / ".clicksam/annotations" / f"{IMAGE}.json").write_text(json.dumps(data))
    factory = FakeFactory()
    with _client(image_dir, factory) as client:
        shown = _post(client, "/api/undo", object=obj)
        assert factory.decodes == 7 and runs_to_mask(shown["mask"]).any()
    factory = FakeFactory()
    with _client(image_dir, factory) as client:
        _post(client, "/api/redo", object=obj)
        assert factory.decodes == 1  # the undone step was not part of the replay
    factory = FakeFactory()
    with _client(image_dir, factory) as client:
        _post(client, "/api/undo", object=obj)
        _post(client, "/api/redo", object=obj)
        assert factory.decodes == 0
