"""``clicksam serve`` and ``clicksam export`` from the command line, and the real tiny model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clicksam.cli import main
from clicksam.io import read_label_map, rle_to_mask


def _annotate(image_dir: Path) -> None:
    """Two objects on img0 (one with a hole), one on img1, through the API on the fake model."""
    from fastapi.testclient import TestClient

    from tests.server.conftest import make_app

    with TestClient(make_app(image_dir)) as client:
        for image, label, clicks in (("img0.png", "ball", [(40, 30, True), (40, 30, False)]),
                                     ("img0.png", "dot", [(10, 10, True)]),
                                     ("img1.png", "ball", [(40, 30, True)])):
            obj = client.post("/api/objects", json={"image": image, "label": label}).json()
            for x, y, positive in clicks:
                client.post("/api/click", json={"image": image, "object": obj["id"], "x": x, "y": y,
                                                "positive": positive})
        client.post("/api/objects", json={"image": "img2.png", "label": "empty"})  # no mask: not exported


def test_export_cli_all_formats(image_dir, tmp_path, capsys):
    _annotate(image_dir)
    assert main(["export", str(image_dir), "--format", "coco", "--out", str(tmp_path / "coco.json")]) == 0
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["ball", "dot", "empty"]  # the class list, used or not
    assert len(coco["annotations"]) == 3 and {i["file_name"] for i in coco["images"]} >= {"img0.png", "img1.png"}
    first = coco["annotations"][0]
    mask = rle_to_mask(first["segmentation"])
    assert first["area"] == int(mask.sum()) and not mask[30, 40] and mask[30, 50]

    assert main(["export", str(image_dir), "--format", "png", "--out", str(tmp_path / "png")]) == 0
    instances = read_label_map(tmp_path / "png/instances/img0.png")
    classes = read_label_map(tmp_path / "png/classes/img0.png")
    assert instances.shape == (60, 80) and set(np.unique(instances)) == {0, 1, 2}
    assert classes[30, 50] == 1 and classes[10, 10] == 2 and instances[30, 40] == 0
    labels = json.loads((tmp_path / "png/labels.json").read_text())
    assert labels["categories"] == {"ball": 1, "dot": 2, "empty": 3} and labels["images"]["img0.png"] == {"1": "ball", "2": "dot"}

    assert main(["export", str(image_dir), "--format", "polygons", "--out", str(tmp_path / "poly.json")]) == 0
    polygons = json.loads((tmp_path / "poly.json").read_text())
    ball = polygons["images"][0]["objects"][0]
    assert ball["label"] == "ball" and len(ball["polygons"][0]["holes"]) == 1
    assert "exported" in capsys.readouterr().out


def test_export_cli_errors(image_dir, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "--format", "coco"]) == 2
    assert "image folder not found" in capsys.readouterr().err
    assert main(["export", str(image_dir), "--format", "coco"]) == 2
    assert "no annotations found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(image_dir), "--format", "xml"])


def test_serve_token_and_host(image_dir, monkeypatch, capsys):
    import uvicorn

    from clicksam.server.cli import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    calls = []
    monkeypatch.setattr(uvicorn.Server, "run",
                        lambda self, sockets=None: calls.append((self.config.app, sockets[0].getsockname())))
    monkeypatch.delenv("CLICKSAM_TOKEN", raising=False)
    assert main(["serve", "--model", "tiny", "--images", str(image_dir), "--host", "0.0.0.0", "--port", "0"]) == 0
    app, (host, port) = calls[-1]
    assert host == "0.0.0.0" and port > 0
    printed = capsys.readouterr()
    assert f"open http://0.0.0.0:{port}/?token=" in printed.out
    assert "?token=" in printed.out and "reachable from other machines" in printed.err
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        assert client.post("/api/objects", json={"image": "img0.png"}).status_code == 401
        token = printed.out.split("?token=")[1].split()[0]
        assert client.post("/api/objects", json={"image": "img0.png"},
                           headers={"X-Clicksam-Token": token}).status_code == 200
    assert main(["serve", "--model", "tiny", "--images", str(image_dir), "--port", "0"]) == 0
    assert "?token=" not in capsys.readouterr().out  # loopback: no token by default
    assert main(["serve", "--model", "tiny", "--images", str(image_dir), "--method", "magic", "--port", "0"]) == 2
    assert "unknown method stage" in capsys.readouterr().err


def test_real_tiny_model_through_the_api(image_dir):
    from fastapi.testclient import TestClient

    from clicksam.server.cli import build_app

    with TestClient(build_app(image_dir, model="tiny")) as client:
        info = client.get("/api/info").json()
        assert info["model"] == "tiny" and {"name": "sam", "available": True, "reason": ""} in info["methods"]
        unavailable = [m for m in info["methods"] if not m["available"]]
        assert unavailable and all(m["reason"] for m in unavailable)
        obj = client.post("/api/objects", json={"image": "img0.png"}).json()
        first = client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 40, "y": 30}).json()
        assert first["mask"]["size"] == [60, 80] and first["latency_ms"] > 0 and first["score"] is not None
        second = client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 5, "y": 5,
                                                 "positive": False}).json()
        undone = client.post("/api/undo", json={"image": "img0.png", "object": obj["id"]}).json()
        assert undone["mask"] == first["mask"] and second["clicks"][1] == [5.0, 5.0, False]
        refused = client.patch("/api/objects", json={"image": "img0.png", "object": obj["id"],
                                                     "method": unavailable[0]["name"]})
        assert refused.status_code == 409


def test_reopening_an_image_uses_the_disk_embedding_cache(tmp_path):
    from clicksam import build_sam
    from clicksam.cache import EmbeddingCache
    from clicksam.server.backend import SamSessionFactory

    model = build_sam("tiny")
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    first = SamSessionFactory(model, EmbeddingCache(tmp_path / "emb")).prepare("a.png", image)
    again = SamSessionFactory(model, EmbeddingCache(tmp_path / "emb")).prepare("a.png", image)  # a "restart"
    assert not first.last_encode_cached and again.last_encode_cached
    session = SamSessionFactory(model, EmbeddingCache(tmp_path / "emb")).create(again, "sam")
    session.add_click(10, 10)
    assert session.mask.shape == (48, 64)


def test_serve_on_a_busy_port_says_so_without_printing_an_address(image_dir, monkeypatch, capsys):
    import socket

    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: pytest.fail("must not serve"))
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        assert main(["serve", "--model", "tiny", "--images", str(image_dir), "--port", str(port)]) == 2
    printed = capsys.readouterr()
    assert f"port {port} on 127.0.0.1 is already in use" in printed.err and "--port" in printed.err
    assert "open http" not in printed.out and "Traceback" not in printed.err


def test_serve_prints_its_address_once_it_listens(image_dir, monkeypatch, capsys):
    """When "open http://..." is printed, a connection to that address already succeeds."""
    import socket

    import uvicorn

    def serve(self, sockets=None):
        url = capsys.readouterr().out.split("open ")[1].split()[0]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # accepted into the listening socket's backlog
        served.append(port)

    served = []
    monkeypatch.setattr(uvicorn.Server, "run", serve)
    assert main(["serve", "--model", "tiny", "--images", str(image_dir), "--port", "0"]) == 0
    assert served
