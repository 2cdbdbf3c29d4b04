"""The annotator on a folder of bad files: every endpoint answers 4xx with the reason, never a 500,
the keep-alive connection stays usable, and no annotation of the good images is lost (issue #16).

Bad files: a text file named .jpg, a truncated JPEG, a decompression bomb (over a small
``CLICKSAM_MAX_IMAGE_PIXELS``), a zero-byte PNG, a 32-bit float TIFF; 16-bit PNGs and CMYK JPEGs are
read (high byte, converted) and must work like any image. One annotation file is corrupt.
"""
from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.server.conftest import make_app, write_images

UNREADABLE = {"text.jpg": "not an image file", "truncated.jpg": "truncated", "bomb.png": "over the limit",
              "empty.png": "not an image file", "float.tif": "floating-point"}
READABLE = ["img0.png", "img1.png", "deep.png", "cmyk.jpg"]  # 16-bit and CMYK are read as browsers show them
CORRUPT = "img2.png"  # its annotation file is damaged
LIMIT = 40_000  # CLICKSAM_MAX_IMAGE_PIXELS: the bomb is 300x300


def write_bad_folder(folder: Path) -> None:
    write_images(folder, count=3)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    (folder / "text.jpg").write_text("this is not a photo\n")
    data = io.BytesIO()
    Image.fromarray(photo).save(data, format="JPEG", quality=90)
    (folder / "truncated.jpg").write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    Image.new("RGB", (300, 300), (10, 20, 30)).save(folder / "bomb.png")
    (folder / "empty.png").write_bytes(b"")
    Image.fromarray(np.full((60, 80), 0.5, np.float32), mode="F").save(folder / "float.tif")
    Image.fromarray((np.arange(60 * 80, dtype=np.uint16).reshape(60, 80) * 13)).save(folder / "deep.png")
    Image.fromarray(photo).convert("CMYK").save(folder / "cmyk.jpg", quality=95)


@pytest.fixture
def bad_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLICKSAM_MAX_IMAGE_PIXELS", str(LIMIT))
    folder = tmp_path / "images"
    write_bad_folder(folder)
    return folder


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def _annotate(client: Any, image: str, rng: random.Random) -> None:
    """Objects with clicks, a box, a stroke, an undo, a delete and an undone delete."""
    first = _ok(client.post("/api/objects", json={"image": image, "label": "cup"}))["id"]
    for _ in range(3):
        _ok(client.post("/api/click", json={"image": image, "object": first, "x": rng.randrange(80),
                                            "y": rng.randrange(60), "positive": rng.random() < 0.7}))
    _ok(client.post("/api/box", json={"image": image, "object": first, "x0": 5, "y0": 5, "x1": 50, "y1": 40}))
    second = _ok(client.post("/api/objects", json={"image": image, "label": "plate"}))["id"]
    _ok(client.post("/api/stroke", json={"image": image, "object": second, "mode": "paint", "radius": 3,
                                         "points": [[10, 10], [30, 20]]}))
    _ok(client.post("/api/undo", json={"image": image, "object": first}))
    _ok(client.delete("/api/objects", params={"image": image, "object": second}))
    _ok(client.post("/api/undo", json={"image": image}))


def _requests(image: str, obj: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Every endpoint about an image, with plausible arguments: (method, path, params or body)."""
    return [
        ("GET", "/api/annotation", {"name": image}), ("GET", "/api/image", {"name": image}),
        ("GET", "/api/tile", {"name": image, "level": 0, "col": 0, "row": 0}),
        ("POST", "/api/open", {"image": image}), ("POST", "/api/review", {"image": image, "review": "done"}),
        ("POST", "/api/objects", {"image": image, "label": "cup"}),
        ("PATCH", "/api/objects", {"image": image, "object": obj, "class": 1, "hidden": False}),
        ("PATCH", "/api/objects", {"image": image, "object": obj, "method": "sam-ref"}),
        ("PATCH", "/api/objects", {"image": image, "object": obj, "method": "sam"}),
        ("POST", "/api/click", {"image": image, "object": obj, "x": 20, "y": 20}),
        ("POST", "/api/click", {"image": image, "object": obj, "x": 30, "y": 25, "positive": False}),
        ("POST", "/api/box", {"image": image, "object": obj, "x0": 3, "y0": 4, "x1": 40, "y1": 30}),
        ("POST", "/api/stroke", {"image": image, "object": obj, "mode": "erase", "radius": 2, "points": [[5, 5]]}),
        ("POST", "/api/undo", {"image": image}), ("POST", "/api/redo", {"image": image}),
        ("POST", "/api/undo", {"image": image, "object": obj}), ("POST", "/api/reset", {"image": image, "object": obj}),
        ("DELETE", "/api/objects", {"image": image, "object": obj}),
    ]


GLOBAL = [("GET", "/api/info", {}), ("GET", "/api/images", {}), ("GET", "/api/progress", {}),
          ("GET", "/api/classes", {}), ("POST", "/api/classes", {"name": "fuzz"}),
          ("PATCH", "/api/classes", {"id": 1, "colour": "#123456"}), ("DELETE", "/api/classes", {"id": 99}),
          ("GET", "/api/export", {"format": "coco"}), ("GET", "/api/export", {"format": "png"}),
          ("GET", "/api/export", {"format": "polygons"})]


def _send(client: Any, method: str, path: str, args: dict[str, Any]) -> Any:
    if method in ("GET", "DELETE"):
        return client.request(method, path, params=args)
    return client.request(method, path, json=args)


def test_no_500_and_no_lost_annotation_on_a_folder_of_bad_files(bad_folder):
    from fastapi.testclient import TestClient

    rng = random.Random(0)
    with TestClient(make_app(bad_folder)) as client:
        for image in READABLE + [CORRUPT]:
            _annotate(client, image, rng)
        store = bad_folder / ".clicksam" / "annotations"
        (store / f"{CORRUPT}.json").write_text('{"format": "clicksam-annotations", "version": 2, "objects": [')
    with TestClient(make_app(bad_folder)) as client:  # a restart: the corrupt file is read from disk
        listed = {i["name"] for i in _ok(client.get("/api/images"))["images"]}
        assert listed == set(UNREADABLE) | set(READABLE) | {CORRUPT, "img2.png"}
        for name, reason in UNREADABLE.items():
            for method, path, args in _requests(name, 1):
                answer = _send(client, method, path, args)
                assert answer.status_code == 422, (name, path, answer.status_code, answer.text)
                assert "cannot be read" in answer.json()["detail"] and reason in answer.json()["detail"], answer.text
        statuses = {i["name"]: i["status"] for i in _ok(client.get("/api/images"))["images"]}
        assert all(statuses[name] == "failed" for name in UNREADABLE)
        refused = client.get("/api/annotation", params={"name": CORRUPT})
        assert refused.status_code == 409 and "corrupt annotation file" in refused.json()["detail"]
        before = {name: _ok(client.get("/api/annotation", params={"name": name}))["objects"] for name in READABLE}

        calls = GLOBAL + [call for name in [*UNREADABLE, *READABLE, CORRUPT] for call in _requests(name, 1)]
        for _ in range(400):  # the fuzz: every endpoint, any image, any order
            method, path, args = rng.choice(calls)
            answer = _send(client, method, path, args)
            assert answer.status_code < 500, (method, path, args, answer.text)
            assert answer.status_code < 400 or answer.json().get("detail"), (path, answer.text)
        after = {name: _ok(client.get("/api/annotation", params={"name": name}))["objects"] for name in READABLE}
        coco = _ok(client.get("/api/export", params={"format": "coco"}))
    assert any(before[name] != after[name] for name in READABLE)  # the fuzz did change the good images
    with TestClient(make_app(bad_folder)) as client:  # nothing lost: the files hold what the page showed
        for name in READABLE:
            assert _ok(client.get("/api/annotation", params={"name": name}))["objects"] == after[name]
    exported = {i["file_name"] for i in coco["images"]}
    assert exported == set(READABLE) and CORRUPT in coco["info"]["warnings"][0]


def test_readable_16_bit_and_cmyk_images_work_like_any_image(bad_folder):
    from fastapi.testclient import TestClient

    from clicksam.images import read_image

    with TestClient(make_app(bad_folder)) as client:
        for name in ("deep.png", "cmyk.jpg"):
            shown = _ok(client.get("/api/annotation", params={"name": name}))
            assert (shown["width"], shown["height"]) == (80, 60)
            copy = client.get("/api/image", params={"name": name})
            pixels = np.asarray(Image.open(io.BytesIO(copy.content)).convert("RGB"))
            expected = read_image(bad_folder / name)
            assert pixels.shape == expected.shape
            if copy.headers["content-type"] == "image/png":  # lossless file: the pixels exactly
                assert np.array_equal(pixels, expected)


def test_the_keep_alive_connection_survives_bad_files(bad_folder):
    """A real server (uvicorn, HTTP/1.1 keep-alive): requests about unreadable files answer 422 and the
    next request on the same connection is answered (issue #16: it was reset after a 500)."""
    import http.client
    import socket
    import threading
    import time

    import uvicorn

    app = make_app(bad_folder)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        connection = http.client.HTTPConnection("127.0.0.1", sock.getsockname()[1], timeout=20)
        used = None
        for name in [*UNREADABLE, "img0.png", *UNREADABLE]:
            for method, path, body in (("GET", f"/api/annotation?name={name}", None),
                                       ("POST", "/api/objects", json.dumps({"image": name}))):
                connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = json.loads(response.read())
                assert response.status == (200 if name == "img0.png" else 422), payload
                assert response.getheader("connection", "keep-alive").lower() != "close"
                assert used is None or connection.sock is used, "the connection was closed"
                used = connection.sock
        connection.close()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_exports_skip_a_corrupt_annotation_file_and_say_so(image_dir, tmp_path, caplog, capsys):
    from fastapi.testclient import TestClient

    from clicksam.cli import main

    with TestClient(make_app(image_dir)) as client:
        for image in ("img0.png", "img1.png", "img2.png"):
            obj = _ok(client.post("/api/objects", json={"image": image, "label": "cup"}))
            _ok(client.post("/api/click", json={"image": image, "object": obj["id"], "x": 40, "y": 30}))
    store = image_dir / ".clicksam" / "annotations"
    (store / "img1.png.json").write_text("{not json")
    damaged = json.loads((store / "img2.png.json").read_text())
    damaged["objects"][0]["mask"]["counts"] = "!!!"  # a damaged mask, in a file that is valid JSON
    (store / "img2.png.json").write_text(json.dumps(damaged))
    with TestClient(make_app(image_dir)) as client, caplog.at_level("WARNING"):
        coco = client.get("/api/export", params={"format": "coco"})
        assert coco.status_code == 200 and coco.headers["x-clicksam-skipped"] == "2"
        assert [i["file_name"] for i in coco.json()["images"]] == ["img0.png"]
        warnings = coco.json()["info"]["warnings"]
        assert "img1.png" in warnings[0] and "img2.png" in warnings[1] and "mask" in warnings[1]
        polygons = client.get("/api/export", params={"format": "polygons"}).json()
        assert [i["file_name"] for i in polygons["images"]] == ["img0.png"] and len(polygons["warnings"]) == 2
        archive = zipfile.ZipFile(io.BytesIO(client.get("/api/export", params={"format": "png"}).content))
        labels = json.loads(archive.read("labels.json"))
        assert list(labels["images"]) == ["img0.png"] and len(labels["warnings"]) == 2
    assert sum("img1.png" in r.getMessage() for r in caplog.records) == 3  # logged by each export
    out = tmp_path / "coco.json"
    assert main(["export", str(image_dir), "--format", "coco", "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert "warning: skipped 'img1.png'" in printed.err and "warning: skipped 'img2.png'" in printed.err
    assert "2 corrupt annotation file(s) skipped" in printed.out
    assert [i["file_name"] for i in json.loads(out.read_text())["images"]] == ["img0.png"]
    assert main(["export", str(image_dir), "--format", "png", "--out", str(tmp_path / "png")]) == 1
    assert (tmp_path / "png" / "instances" / "img0.png").is_file()
    assert not (tmp_path / "png" / "instances" / "img1.png").exists()


def test_an_annotated_image_whose_file_goes_bad_keeps_its_annotation(image_dir):
    """The file truncated, then replaced by an image of another size, then put back: 422, then 409 with
    the reason, and the annotation is there again, untouched, when the original comes back."""
    import os

    from fastapi.testclient import TestClient

    original = (image_dir / "img0.png").read_bytes()
    with TestClient(make_app(image_dir)) as client:
        obj = _ok(client.post("/api/objects", json={"image": "img0.png"}))
        made = _ok(client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 40, "y": 30}))
        saved = (image_dir / ".clicksam/annotations/img0.png.json").read_text()
        (image_dir / "img0.png").write_bytes(original[: len(original) // 2])
        os.utime(image_dir / "img0.png", ns=(1, 1))
        for method, path, args in _requests("img0.png", obj["id"]):
            answer = _send(client, method, path, args)
            assert answer.status_code == 422 and "truncated" in answer.json()["detail"], (path, answer.text)
        Image.new("RGB", (40, 30)).save(image_dir / "img0.png")
        os.utime(image_dir / "img0.png", ns=(2, 2))
        moved = client.get("/api/annotation", params={"name": "img0.png"})
        assert moved.status_code == 409 and "80x60 image but the file is 40x30" in moved.json()["detail"]
        refused = client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 4, "y": 3})
        assert refused.status_code == 409
        (image_dir / "img0.png").write_bytes(original)
        os.utime(image_dir / "img0.png", ns=(3, 3))
        assert _ok(client.get("/api/annotation", params={"name": "img0.png"}))["objects"][0]["mask"] == made["mask"]
    assert (image_dir / ".clicksam/annotations/img0.png.json").read_text() == saved


def test_a_changed_image_file_is_encoded_again(image_dir):
    """The same size, other pixels: the model must not go on with the old embedding."""
    import os

    from fastapi.testclient import TestClient

    from tests.server.fakes import FakeFactory

    factory = FakeFactory()
    with TestClient(make_app(image_dir, factory)) as client:
        obj = _ok(client.post("/api/objects", json={"image": "img0.png"}))
        _ok(client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 40, "y": 30}))
        Image.new("RGB", (80, 60), (200, 0, 0)).save(image_dir / "img0.png")
        os.utime(image_dir / "img0.png", ns=(5, 5))
        _ok(client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 20, "y": 30}))
        assert factory.prepared.count("img0.png") == 2 and factory.decodes == 1 + 2  # a replay on the new pixels
