"""The folder's class list: the file, the API, ``--classes`` / ``classes.txt``, and the exports' categories."""
from __future__ import annotations

import json

import pytest

from clicksam.cli import main
from clicksam.server.classes import ClassList, read_class_file
from tests.server.conftest import make_app


def test_class_list_ids_names_colours_and_file(tmp_path):
    classes = ClassList(tmp_path / ".classes.json")
    cup = classes.add("cup")
    plate = classes.add(" plate ", "#00FF00")
    assert (cup.id, plate.id, plate.name, plate.colour) == (1, 2, "plate", "#00ff00")
    with pytest.raises(ValueError, match="exists already .as 'cup'"):
        classes.add("Cup")  # the "cup", "Cup", "cups" problem of issue #20
    with pytest.raises(ValueError, match="printable"):
        classes.add("a\nb")
    with pytest.raises(ValueError, match="colour"):
        classes.add("bowl", "red")
    assert classes.ensure("CUP") == cup and [c.name for c in classes.extend(["bowl", "plate", "bowl"])] == ["bowl"]
    classes.update(1, name="mug")
    classes.remove(2)
    again = ClassList(tmp_path / ".classes.json")  # every change was saved
    assert [(c.id, c.name) for c in again.classes] == [(1, "mug"), (3, "bowl")]
    assert again.add("plate").id == 4  # ids are never reused
    (tmp_path / ".classes.json").write_text('{"format": "clicksam-classes", "version": 1, "classes": [{"id": 1}]}')
    with pytest.raises(ValueError, match="corrupt class file"):
        ClassList(tmp_path / ".classes.json")


def test_read_class_file(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("# kitchen\ncup\n\n  plate  \nbowl\n")
    assert read_class_file(path) == ["cup", "plate", "bowl"]
    path.write_text("cup\n" + "x" * 101 + "\n")
    with pytest.raises(ValueError, match="line 2"):
        read_class_file(path)
    with pytest.raises(FileNotFoundError, match="class file not found"):
        read_class_file(tmp_path / "missing.txt")


def test_classes_api_objects_and_coco_categories(image_dir):
    from fastapi.testclient import TestClient

    with TestClient(make_app(image_dir)) as client:
        for name in ("cup", "plate", "bowl"):
            assert client.post("/api/classes", json={"name": name}).status_code == 200
        assert client.post("/api/classes", json={"name": "CUP"}).status_code == 422
        default = client.post("/api/objects", json={"image": "img0.png"}).json()
        assert (default["class"], default["label"]) == (1, "cup")  # the first class by default
        obj = client.post("/api/objects", json={"image": "img0.png", "class": 3}).json()
        assert obj["label"] == "bowl"
        assert client.post("/api/objects", json={"image": "img0.png", "class": 9}).status_code == 422
        client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 40, "y": 30})
        changed = client.patch("/api/objects", json={"image": "img0.png", "object": obj["id"], "class": 2}).json()
        assert changed["label"] == "plate" and changed["image_state"]["can_undo"]
        client.patch("/api/classes", json={"id": 2, "name": "dish", "colour": "#123456"})
        listed = client.get("/api/classes").json()["classes"]
        assert [(c["name"], c["images"]) for c in listed] == [("cup", 1), ("dish", 1), ("bowl", 0)]
        refused = client.delete("/api/classes", params={"id": 2})
        assert refused.status_code == 409 and "img0.png" in refused.json()["detail"]
        assert client.delete("/api/classes", params={"id": 3}).status_code == 200
        coco = client.get("/api/export", params={"format": "coco"}).json()
        assert coco["categories"] == [{"id": 1, "name": "cup", "supercategory": ""},
                                      {"id": 2, "name": "dish", "supercategory": ""}]
        assert [a["category_id"] for a in coco["annotations"]] == [2]  # the empty object is left out
        client.delete("/api/objects", params={"image": "img0.png", "object": obj["id"]})
        still = client.delete("/api/classes", params={"id": 2})  # a deleted object may come back with undo
        assert still.status_code == 409


def test_serve_reads_classes_from_a_file_and_the_folder(image_dir, tmp_path, monkeypatch, capsys):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)  # serve binds, then returns
    (image_dir / "classes.txt").write_text("cup\nplate\n")
    assert main(["serve", "--model", "tiny", "--images", str(image_dir), "--port", "0"]) == 0
    printed = capsys.readouterr().out
    assert "classes: cup, plate" in printed and "2 class(es) added from" in printed
    extra = tmp_path / "more.txt"
    extra.write_text("plate\nbowl\n")
    assert main(["serve", "--model", "tiny", "--images", str(image_dir), "--classes", str(extra), "--port", "0"]) == 0
    assert "1 class(es) added from" in capsys.readouterr().out
    saved = json.loads((image_dir / ".clicksam/annotations/.classes.json").read_text())
    assert [c["name"] for c in saved["classes"]] == ["cup", "plate", "bowl"]
    assert main(["serve", "--model", "tiny", "--images", str(image_dir), "--classes", str(tmp_path / "no.txt"),
                 "--port", "0"]) == 2
    assert "class file not found" in capsys.readouterr().err
