"""Bad requests, path traversal, size limits and the write token."""
from __future__ import annotations

import os

import pytest

from tests.server.conftest import make_app


@pytest.mark.parametrize("name", [
    "../secret.png", "..%2Fsecret.png", "/etc/passwd", "img0.png/../../secret.png", ".clicksam/x.png",
    "sub\\..\\secret.png", "C:/windows/win.ini", "./img0.png", "a\x00.png", "missing.png", "secret.png",
])
def test_traversal_and_unknown_images_refused(client, image_dir, name):
    (image_dir.parent / "secret.png").write_bytes((image_dir / "img0.png").read_bytes())
    for response in (client.get("/api/image", params={"name": name}),
                     client.get("/api/annotation", params={"name": name}),
                     client.post("/api/objects", json={"image": name})):
        assert response.status_code in (404, 422), (name, response.status_code)
        assert "image" in response.json()["detail"]


def test_symlink_out_of_folder_is_not_served(client, image_dir):
    outside = image_dir.parent / "outside.png"
    outside.write_bytes((image_dir / "img0.png").read_bytes())
    os.symlink(outside, image_dir / "link.png")
    assert "link.png" not in [i["name"] for i in client.get("/api/images").json()["images"]]
    assert client.get("/api/image", params={"name": "link.png"}).status_code == 404


def test_static_traversal_refused(client):
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py"):
        response = client.get(path)
        assert response.status_code == 404 or "create_app" not in response.text


def test_bad_requests_have_clear_4xx(client):
    obj = client.post("/api/objects", json={"image": "img0.png"}).json()
    cases = [
        (client.post("/api/click", content=b'{"image": "img0.png", "object": ',
                     headers={"content-type": "application/json"}), 400, "malformed JSON"),
        (client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 80, "y": 10}),
         422, "outside the 80x60 image"),
        (client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": -1, "y": 10}),
         422, "outside"),
        (client.post("/api/click", json={"image": "img0.png", "object": 99, "x": 1, "y": 1}), 404, "no object 99"),
        (client.post("/api/click", json={"image": "nope.png", "object": 1, "x": 1, "y": 1}), 404, "unknown image"),
        (client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": "a", "y": 1}), 422, "x"),
        (client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 1, "y": 1,
                                         "positive": "yes"}), 422, "positive"),
        (client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 1}), 422, "y"),
        (client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 1, "y": 1, "z": 0}),
         422, "z"),
        (client.post("/api/box", json={"image": "img0.png", "object": obj["id"], "x0": 5, "y0": 5, "x1": 5,
                                       "y1": 9}), 422, "at least 1 pixel"),
        (client.post("/api/objects", json={"image": "img0.png", "label": "  "}), 422, "class name"),
        (client.post("/api/undo", json={"image": "img0.png", "object": obj["id"]}), 409, "nothing to undo"),
        (client.post("/api/click", content=b"x=1", headers={"content-type": "application/x-www-form-urlencoded"}),
         415, "JSON"),
        (client.post("/api/click", content=b"[" * 70000, headers={"content-type": "application/json"}),
         413, "larger than"),
    ]
    for response, status, fragment in cases:
        assert response.status_code == status, (fragment, response.status_code, response.text)
        assert fragment in response.json()["detail"], (fragment, response.text)


def test_token_required_for_writes_only(image_dir):
    from fastapi.testclient import TestClient

    with TestClient(make_app(image_dir, token="s3cret")) as client:
        assert client.get("/api/info").json()["token_required"] is True
        assert client.get("/api/images").status_code == 200
        missing = client.post("/api/objects", json={"image": "img0.png"})
        assert missing.status_code == 401 and "x-clicksam-token" in missing.json()["detail"]
        wrong = client.post("/api/objects", json={"image": "img0.png"}, headers={"X-Clicksam-Token": "nope"})
        assert wrong.status_code == 403
        assert client.delete("/api/objects", params={"image": "img0.png", "object": 1}).status_code == 401
        ok = client.post("/api/objects", json={"image": "img0.png"}, headers={"X-Clicksam-Token": "s3cret"})
        assert ok.status_code == 200


def test_corrupt_annotation_file_is_reported(image_dir):
    from fastapi.testclient import TestClient

    store = image_dir / ".clicksam" / "annotations"
    store.mkdir(parents=True)
    (store / "img0.png.json").write_text("{not json")
    with TestClient(make_app(image_dir)) as client:
        response = client.get("/api/annotation", params={"name": "img0.png"})
        assert response.status_code == 409 and "corrupt annotation file" in response.json()["detail"]
        assert client.get("/api/annotation", params={"name": "img1.png"}).status_code == 200


def test_loopback_server_refuses_foreign_host_headers(image_dir):
    from fastapi.testclient import TestClient

    from clicksam.server.app import LOOPBACK_HOSTS

    with TestClient(make_app(image_dir, allowed_hosts=LOOPBACK_HOSTS), base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/info").status_code == 200
        assert client.get("/api/info", headers={"host": "localhost:8000"}).status_code == 200
        assert client.get("/api/info", headers={"host": "[::1]:8000"}).status_code == 200
        rebound = client.get("/api/images", headers={"host": "evil.example:8000"})
        assert rebound.status_code == 400 and "Host header" in rebound.json()["detail"]
