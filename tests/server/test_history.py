"""Image-level undo/redo through the API: order across objects, deletes, resets, strokes, locks, restarts."""
from __future__ import annotations

import json

import numpy as np

from clicksam.io import runs_to_mask
from tests.server.conftest import make_app

IMAGE = "img0.png"


def _post(client, path, **body):
    response = client.post(path, json={"image": IMAGE, **body})
    assert response.status_code == 200, response.text
    return response.json()


def _mask(view):
    return np.zeros((60, 80), bool) if view["mask"] is None else runs_to_mask(view["mask"])


def test_undo_and_redo_follow_the_image_order_across_objects(client):
    a = _post(client, "/api/objects")["id"]
    b = _post(client, "/api/objects")["id"]
    first = _post(client, "/api/click", object=a, x=20, y=20)
    _post(client, "/api/click", object=b, x=60, y=40)
    second = _post(client, "/api/click", object=a, x=30, y=20, positive=False)
    assert second["image_state"] == {"review": "in_progress", "can_undo": True, "can_redo": False, "deleted_objects": 0}
    steps = [_post(client, "/api/undo") for _ in range(3)]
    assert [(s["id"], len(s["clicks"])) for s in steps] == [(a, 1), (b, 0), (a, 0)]
    assert steps[0]["mask"] == first["mask"] and not steps[-1]["image_state"]["can_undo"]
    refused = client.post("/api/undo", json={"image": IMAGE})
    assert refused.status_code == 409 and "nothing to undo for this image" in refused.json()["detail"]
    assert [_post(client, "/api/redo")["id"] for _ in range(2)] == [a, b]  # the last undone comes back first
    _post(client, "/api/click", object=b, x=70, y=50)  # a new step of b drops b's redo only ...
    redone = _post(client, "/api/redo")  # ... a's undone negative click can still be redone
    assert redone["id"] == a and redone["mask"] == second["mask"] and not redone["image_state"]["can_redo"]
    by_object = _post(client, "/api/undo", object=b)  # undo of one object skips the others' steps
    assert by_object["id"] == b and len(by_object["clicks"]) == 1


def test_delete_and_reset_are_undoable_and_never_answer_409(client, image_dir):
    keep = _post(client, "/api/objects", label="cup")
    gone = _post(client, "/api/objects", label="plate")
    _post(client, "/api/click", object=keep["id"], x=20, y=20)
    clicked = _post(client, "/api/click", object=gone["id"], x=60, y=40)
    deleted = client.delete("/api/objects", params={"image": IMAGE, "object": gone["id"]}).json()
    assert deleted == {"id": gone["id"], "deleted": True, "image_state": {
        "review": "in_progress", "can_undo": True, "can_redo": False, "deleted_objects": 1}}
    assert [o["id"] for o in client.get("/api/annotation", params={"name": IMAGE}).json()["objects"]] == [keep["id"]]
    back = _post(client, "/api/undo")
    assert back["id"] == gone["id"] and not back["deleted"] and back["index"] == 1 and back["mask"] == clicked["mask"]
    again = _post(client, "/api/redo")
    assert again["deleted"] and again["id"] == gone["id"]
    _post(client, "/api/undo")
    reset = _post(client, "/api/reset", object=gone["id"])
    assert reset["mask"] is None and reset["clicks"] == [] and reset["image_state"]["can_undo"]
    restored = _post(client, "/api/undo")  # the first reset of issue #20 made undo answer 409
    assert restored["mask"] == clicked["mask"] and restored["clicks"] == [[60.0, 40.0, True]]
    assert _post(client, "/api/redo")["mask"] is None
    _post(client, "/api/undo")
    after = _post(client, "/api/click", object=gone["id"], x=10, y=10, positive=False)  # continues the restored clicks
    assert after["clicks"] == [[60.0, 40.0, True], [10.0, 10.0, False]]
    saved = json.loads((image_dir / ".clicksam/annotations/img0.png.json").read_text())
    assert [a["kind"] for a in saved["objects"][1]["actions"]] == ["click", "click"]
    assert saved["objects"][1]["redo"] == [] and saved["deleted"] == []


def test_strokes_are_steps_and_need_no_model(image_dir):
    from fastapi.testclient import TestClient

    from tests.server.fakes import FakeFactory

    factory = FakeFactory()
    factory.gate.clear()  # no image is ever encoded: strokes, their undo and redo must not wait for it
    with TestClient(make_app(image_dir, factory, encode_timeout=0.2)) as client:
        obj = _post(client, "/api/objects")["id"]
        painted = _post(client, "/api/stroke", object=obj, mode="paint", radius=3, points=[[10, 10], [30, 10]])
        erased = _post(client, "/api/stroke", object=obj, mode="erase", radius=1, points=[[20.5, 10.5]])
        assert painted["strokes"] == 1 and erased["strokes"] == 2 and painted["score"] is None
        assert (_mask(painted) & ~_mask(erased)).sum() == 5 and not (_mask(erased) & ~_mask(painted)).any()
        assert _post(client, "/api/undo")["mask"] == painted["mask"]
        assert _post(client, "/api/undo")["mask"] is None
        assert _post(client, "/api/redo")["mask"] == painted["mask"]
        blocked = client.post("/api/click", json={"image": IMAGE, "object": obj, "x": 5, "y": 5})
        assert blocked.status_code == 503  # a click does need the encoding
        factory.gate.set()
        clicked = _post(client, "/api/click", object=obj, x=60, y=40)
        assert _mask(clicked)[10, 10:30].all() and _mask(clicked)[40, 60]  # the painted pixels stay
        on_paint = _post(client, "/api/click", object=obj, x=20, y=10, positive=False)
        assert not _mask(on_paint)[10, 10:30].any()  # a click on them hands them back to the model
        assert _post(client, "/api/undo")["mask"] == clicked["mask"]
    bad = [dict(mode="spray", radius=2, points=[[1, 1]]), dict(mode="paint", radius=0.1, points=[[1, 1]]),
           dict(mode="paint", radius=2, points=[]), dict(mode="paint", radius=2, points=[[1, 1]] * 2001)]
    with TestClient(make_app(image_dir)) as client:
        for body in bad:
            response = client.post("/api/stroke", json={"image": IMAGE, "object": obj, **body})
            assert response.status_code in (413, 422), body
            assert response.json()["detail"]


def test_locked_objects_refuse_changes_and_history_survives_a_restart(image_dir):
    from fastapi.testclient import TestClient

    with TestClient(make_app(image_dir)) as client:
        obj = _post(client, "/api/objects")["id"]
        _post(client, "/api/click", object=obj, x=20, y=20)
        _post(client, "/api/stroke", object=obj, mode="paint", radius=2, points=[[50, 50]])
        locked = client.patch("/api/objects", json={"image": IMAGE, "object": obj, "locked": True}).json()
        assert locked["locked"] and not locked["hidden"]
        for path, body in (("/api/click", {"x": 5, "y": 5}), ("/api/reset", {}), ("/api/undo", {}),
                           ("/api/stroke", {"mode": "erase", "radius": 2, "points": [[20, 20]]})):
            refused = client.post(path, json={"image": IMAGE, "object": obj, **body})
            assert refused.status_code == 409 and "locked" in refused.json()["detail"], path
        assert client.delete("/api/objects", params={"image": IMAGE, "object": obj}).status_code == 409
        client.patch("/api/objects", json={"image": IMAGE, "object": obj, "locked": False})
        client.delete("/api/objects", params={"image": IMAGE, "object": obj})
        shown = client.get("/api/annotation", params={"name": IMAGE}).json()
    with TestClient(make_app(image_dir)) as client:  # a restart: the deleted object and its history are on disk
        after = client.get("/api/annotation", params={"name": IMAGE}).json()
        assert after["objects"] == shown["objects"] == [] and after["can_undo"] and after["deleted_objects"] == 1
        back = _post(client, "/api/undo")
        assert back["strokes"] == 1 and back["clicks"] == [[20.0, 20.0, True]]
        undone = _post(client, "/api/undo")
        assert undone["strokes"] == 0 and undone["area"] > 0  # the click's mask, without the stroke
