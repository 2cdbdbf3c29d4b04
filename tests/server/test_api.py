"""HTTP API of the annotator on a fake model: prompts, undo/redo, persistence, exports."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from clicksam.io import rle_to_mask, runs_to_mask
from tests.server.conftest import make_app


def _new_object(client, image="img0.png", **extra):
    response = client.post("/api/objects", json={"image": image, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_page_info_and_listing(client):
    page = client.get("/")
    assert page.status_code == 200 and "clicksam" in page.text
    assert client.get("/static/app.js").status_code == 200
    info = client.get("/api/info").json()
    assert info["model"] == "fake" and info["token_required"] is False
    methods = {m["name"]: m for m in info["methods"]}
    assert methods["sam"]["available"] and methods["stable-sam+sam-ref"]["available"]
    assert not methods["focsam"]["available"] and "focsam" in methods["focsam+sam-ref"]["reason"]
    listing = client.get("/api/images").json()
    assert [i["name"] for i in listing["images"]] == ["img0.png", "img1.png", "img2.png"]
    assert listing["progress"]["total"] == 3
    png = client.get("/api/image", params={"name": "img1.png"})
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"


def test_click_undo_redo_box_and_persisted_file(client, image_dir):
    obj = _new_object(client, label="ball", method="sam-ref+stable-sam")
    assert obj["method"] == "stable-sam+sam-ref" and obj["mask"] is None and not obj["can_undo"]
    first = client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 40, "y": 30}).json()
    mask = runs_to_mask(first["mask"])
    assert mask.shape == (60, 80) and mask[30, 40] and first["area"] == int(mask.sum())
    assert first["latency_ms"] >= 0 and first["clicks"] == [[40.0, 30.0, True]] and first["can_undo"]
    second = client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 41, "y": 31,
                                             "positive": False}).json()
    assert not runs_to_mask(second["mask"])[31, 41] and second["area"] < first["area"]
    undone = client.post("/api/undo", json={"image": "img0.png", "object": obj["id"]}).json()
    assert undone["area"] == first["area"] and undone["can_redo"]
    redone = client.post("/api/redo", json={"image": "img0.png", "object": obj["id"]}).json()
    assert redone["area"] == second["area"] and not redone["can_redo"]
    boxed = client.post("/api/box", json={"image": "img0.png", "object": obj["id"],
                                          "x0": 45, "y0": 35, "x1": 30, "y1": 20}).json()
    assert boxed["box"] == [30.0, 20.0, 45.0, 35.0]
    saved = json.loads((image_dir / ".clicksam/annotations/img0.png.json").read_text())
    record = saved["objects"][0]
    assert record["class"] == obj["class"] and obj["label"] == "ball" and record["box"] == [30.0, 20.0, 45.0, 35.0]
    assert [a["kind"] for a in record["actions"]] == ["click", "click", "box"]
    np.testing.assert_array_equal(rle_to_mask(record["mask"]), runs_to_mask(boxed["mask"]))
    nothing = client.post("/api/redo", json={"image": "img0.png", "object": obj["id"]})
    assert nothing.status_code == 409 and "nothing to redo" in nothing.json()["detail"]


def test_restart_shows_masks_at_once_and_replays_history(image_dir):
    from fastapi.testclient import TestClient

    from tests.server.fakes import FakeFactory

    with TestClient(make_app(image_dir)) as client:
        obj = _new_object(client, "img1.png", label="a")
        for x, positive in ((20, True), (60, True), (60, False)):
            client.post("/api/click", json={"image": "img1.png", "object": obj["id"], "x": x, "y": 30,
                                            "positive": positive})
        before = client.post("/api/undo", json={"image": "img1.png", "object": obj["id"]}).json()
    factory = FakeFactory()
    factory.gate.clear()  # encoding blocked: the stored mask must show without the model
    with TestClient(make_app(image_dir, factory)) as client:
        shown = client.get("/api/annotation", params={"name": "img1.png"}).json()
        assert shown["objects"][0]["mask"] == before["mask"] and shown["objects"][0]["can_redo"]
        factory.gate.set()
        redone = client.post("/api/redo", json={"image": "img1.png", "object": obj["id"]}).json()
        assert not runs_to_mask(redone["mask"])[30, 60]  # the negative click came back from the redo stack
        assert runs_to_mask(redone["mask"])[30, 20]


def test_objects_label_method_delete(client):
    a = _new_object(client, label="cat")
    b = _new_object(client, label="dog", method="sam")
    assert b["id"] == a["id"] + 1
    client.post("/api/click", json={"image": "img0.png", "object": a["id"], "x": 10, "y": 10})
    changed = client.patch("/api/objects", json={"image": "img0.png", "object": a["id"], "label": "tiger",
                                                 "method": "sam-ref"}).json()
    assert changed["label"] == "tiger" and changed["method"] == "sam-ref" and changed["area"] > 0
    refused = client.patch("/api/objects", json={"image": "img0.png", "object": a["id"], "method": "focsam"})
    assert refused.status_code == 409 and "unavailable" in refused.json()["detail"]
    assert client.post("/api/objects", json={"image": "img0.png", "method": "magic"}).status_code == 422
    assert client.delete("/api/objects", params={"image": "img0.png", "object": b["id"]}).status_code == 200
    objects = client.get("/api/annotation", params={"name": "img0.png"}).json()["objects"]
    assert [o["label"] for o in objects] == ["tiger"]
    assert [c["name"] for c in client.get("/api/classes").json()["classes"]] == ["cat", "dog", "tiger"]
    listing = {i["name"]: i for i in client.get("/api/images").json()["images"]}
    assert listing["img0.png"]["objects"] == 1


def test_exports_coco_png_polygons(client):
    obj = _new_object(client, label="ball")
    client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 40, "y": 30})
    client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 40, "y": 30,
                                    "positive": False})  # a hole in the middle
    coco = client.get("/api/export", params={"format": "coco"}).json()
    assert coco["categories"] == [{"id": 1, "name": "ball", "supercategory": ""}]
    segmentation = rle_to_mask(coco["annotations"][0]["segmentation"])
    assert segmentation.shape == (60, 80) and not segmentation[30, 40] and segmentation[30, 50]
    polygons = client.get("/api/export", params={"format": "polygons"}).json()
    shape = polygons["images"][0]["objects"][0]["polygons"]
    assert len(shape) == 1 and len(shape[0]["holes"]) == 1
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/export", params={"format": "png"}).content))
    assert {"instances/img0.png", "classes/img0.png", "labels.json"} <= set(archive.namelist())
    assert client.get("/api/export", params={"format": "xml"}).status_code == 422


def test_encoding_progress_prefetch_and_failure(image_dir):
    from fastapi.testclient import TestClient

    from tests.server.fakes import FakeFactory

    factory = FakeFactory()
    factory.fail.add("img2.png")
    with TestClient(make_app(image_dir, factory, encode_timeout=5.0)) as client:
        opened = client.post("/api/open", json={"image": "img0.png"}).json()
        assert opened["status"] in ("queued", "encoding", "ready")
        service = client.app.state.service
        service.worker.get("img0.png", 5)
        with pytest.raises(Exception, match="failed"):
            service.worker.get("img2.png", 5)
        assert factory.prepared[:2] == ["img0.png", "img1.png"]  # the opened image first, then prefetch
        statuses = {i["name"]: i["status"] for i in client.get("/api/images").json()["images"]}
        assert statuses == {"img0.png": "ready", "img1.png": "ready", "img2.png": "failed"}
        obj = _new_object(client, "img2.png")
        failed = client.post("/api/click", json={"image": "img2.png", "object": obj["id"], "x": 1, "y": 1})
        assert failed.status_code == 503 and "simulated encoder failure" in failed.json()["detail"]


def test_failed_method_switch_leaves_the_object_unchanged(image_dir):
    from fastapi.testclient import TestClient

    from tests.server.fakes import FakeFactory

    factory = FakeFactory()
    with TestClient(make_app(image_dir, factory)) as client:
        obj = _new_object(client, label="a", method="sam")
        clicked = client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 40, "y": 30}).json()
        factory.refuse_methods.add("sam-ref")
        refused = client.patch("/api/objects", json={"image": "img0.png", "object": obj["id"], "label": "b",
                                                     "method": "sam-ref"})
        assert refused.status_code == 409 and "simulated refusal" in refused.json()["detail"]
        shown = client.get("/api/annotation", params={"name": "img0.png"}).json()["objects"][0]
        assert (shown["label"], shown["method"], shown["mask"]) == ("a", "sam", clicked["mask"])
        after = client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 10, "y": 10}).json()
        assert after["clicks"] == [[40.0, 30.0, True], [10.0, 10.0, True]]


def test_review_status_counts_and_display_flags(image_dir):
    from fastapi.testclient import TestClient

    with TestClient(make_app(image_dir)) as client:
        listing = client.get("/api/images").json()
        assert listing["reviews"] == {"todo": 3, "in_progress": 0, "done": 0, "needs_review": 0}
        obj = _new_object(client, "img1.png")
        assert obj["image_state"]["review"] == "in_progress"  # the first change starts the image
        marked = client.post("/api/review", json={"image": "img1.png", "review": "done"}).json()
        assert marked["image_state"]["review"] == "done"
        client.post("/api/click", json={"image": "img1.png", "object": obj["id"], "x": 40, "y": 30})
        client.post("/api/review", json={"image": "img2.png", "review": "needs_review"})
        bad = client.post("/api/review", json={"image": "img2.png", "review": "finished"})
        assert bad.status_code == 422
        flags = client.patch("/api/objects", json={"image": "img1.png", "object": obj["id"], "hidden": True,
                                                   "solo": True}).json()
        assert (flags["hidden"], flags["locked"], flags["solo"]) == (True, False, True)
        assert client.patch("/api/objects", json={"image": "img1.png", "object": obj["id"],
                                                  "hidden": "yes"}).status_code == 422
    with TestClient(make_app(image_dir)) as client:  # all of it is in the files
        listing = client.get("/api/images").json()
        assert {i["name"]: i["review"] for i in listing["images"]} == {
            "img0.png": "todo", "img1.png": "done", "img2.png": "needs_review"}  # a click keeps "done"
        assert listing["reviews"] == {"todo": 1, "in_progress": 0, "done": 1, "needs_review": 1}
        shown = client.get("/api/annotation", params={"name": "img1.png"}).json()
        assert shown["review"] == "done" and shown["objects"][0]["hidden"] and shown["objects"][0]["solo"]
