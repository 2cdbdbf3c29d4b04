"""Annotation files: version-2 round trip, validation, and the migration of version-1 files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from clicksam.io import mask_to_rle
from clicksam.server.steps import Action, Reset, Stroke
from clicksam.server.store import AnnotationStore, DeletedObject, ImageAnnotation, ObjectRecord


def _annotation(store: AnnotationStore) -> ImageAnnotation:
    cat = store.classes.add("cat").id
    empty = mask_to_rle(np.zeros((5, 5), bool))
    record = ObjectRecord(3, cat, "focsam", [Action("click", 1.5, 2.0, True), Action("box", box=(0, 0, 4, 4)),
                                             Stroke("paint", 1.0, ((1.0, 1.0), (3.0, 1.0)), empty)],
                          [Action("click", 3, 3, False)], {"size": [5, 5], "counts": "25"}, 0.5, hidden=True)
    gone = ObjectRecord(1, cat, "sam", [Action("click", 2, 2, True), Reset(empty, 0.25)], locked=True)
    return ImageAnnotation("sub/a.png", 5, 5, [record], next_id=4, review="needs_review",
                           deleted=[DeletedObject(0, gone)],
                           history=[(1, "step"), (3, "step"), (3, "step"), (1, "step"), (3, "step"), (1, "delete")],
                           future=[(3, "step")])


def test_round_trip_and_derived_fields(tmp_path):
    store = AnnotationStore(tmp_path / "ann")
    annotation = _annotation(store)
    path = store.save(annotation)
    assert path == tmp_path / "ann" / "sub" / "a.png.json"
    loaded = store.load("sub/a.png")
    assert loaded == annotation and store.images() == ["sub/a.png"]  # .classes.json is not an image
    saved = json.loads(path.read_text())
    assert saved["version"] == 2 and saved["review"] == "needs_review"
    item = saved["objects"][0]
    assert item["clicks"] == [[1.5, 2.0, True]] and item["box"] == [0, 0, 4, 4] and item["hidden"] is True
    assert item["actions"][2]["points"] == [[1.0, 1.0], [3.0, 1.0]] and item["class"] == 1
    assert saved["deleted"][0]["object"]["actions"][1]["kind"] == "reset"
    assert loaded.deleted[0].record.clicks == []  # the reset cleared its clicks


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="other"), "not a clicksam"),
    (lambda d: d.update(version=9), "unsupported annotation version"),
    (lambda d: d.update(width=0), "positive ints"),
    (lambda d: d.update(review="finished"), "review must be one of"),
    (lambda d: d["objects"][0].update(id="x"), "positive int"),
    (lambda d: d["objects"][0].update(hidden="yes"), "hidden must be true or false"),
    (lambda d: d["objects"][0]["actions"].append({"kind": "tap"}), "kind"),
    (lambda d: d["objects"][0]["actions"][2].update(radius=0.1), "radius"),
    (lambda d: d["objects"][0]["actions"][2].update(points=[]), "points"),
    (lambda d: d["history"].pop(), "deletes do not match"),
    (lambda d: d["history"].pop(1), "does not match the steps of object 3"),
    (lambda d: d["future"].append([7, "step"]), "unknown objects"),
    (lambda d: d["objects"][0].update({"class": 9}), "class 9, which is not in"),
])
def test_corrupt_files_are_refused_with_the_reason(tmp_path, change, message):
    store = AnnotationStore(tmp_path / "ann")
    path = store.save(_annotation(store))
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        store.load("sub/a.png")


def test_version_1_files_are_migrated_with_a_backup(tmp_path):
    store_dir = tmp_path / "ann"
    store_dir.mkdir()
    version1 = {"format": "clicksam-annotations", "version": 1, "image": "a.png", "width": 80, "height": 60,
                "next_id": 3, "objects": [
                    {"id": 1, "label": "cup", "method": "sam", "actions": [{"kind": "click", "x": 4, "y": 5}],
                     "redo": [{"kind": "click", "x": 9, "y": 9, "positive": False}], "mask": None, "score": None},
                    {"id": 2, "label": "plate", "method": "sam", "actions": [
                        {"kind": "click", "x": 1, "y": 1}, {"kind": "box", "box": [0, 0, 10, 10]}], "redo": []}]}
    (store_dir / "a.png.json").write_text(json.dumps(version1))
    store = AnnotationStore(store_dir)
    store.classes.add("plate")  # an existing class keeps its id
    migrated = store.load("a.png")
    assert [c.name for c in store.classes.classes] == ["plate", "cup"]
    assert [o.class_id for o in migrated.objects] == [2, 1]
    assert migrated.review == "in_progress" and migrated.deleted == []
    assert migrated.history == [(1, "step"), (2, "step"), (2, "step")] and migrated.future == [(1, "step")]
    assert migrated.objects[0].redo == [Action("click", 9, 9, False)]
    assert json.loads((store_dir / "a.png.json").read_text())["version"] == 2  # rewritten in place
    assert json.loads((store_dir / "a.png.json.v1.bak").read_text()) == version1
    store.classes.update(1, name="dish")  # a rename after the migration is not undone by a later load
    assert store.load("a.png").objects[1].class_id == 1 and store.classes.find("plate") is None


def _coded_photo(path, orientation: int, size=(9, 5)) -> None:
    """A PNG whose stored pixel (x, y) holds (x, y, 0), tagged with an EXIF orientation."""
    from PIL import Image

    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0], pixels[..., 1] = np.mgrid[:height, :width][::-1]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_version_1_files_of_rotated_photos_are_turned_with_the_photo(tmp_path, orientation):
    """A version-1 file was made on the stored pixels; read_image now shows the photo turned by its EXIF
    orientation, and the migration turns masks, clicks, boxes and strokes onto the same pixels."""
    from clicksam.images import read_image
    from clicksam.io import rle_to_mask
    from clicksam.server.brush import stroke_pixels

    images = tmp_path / "images"
    images.mkdir()
    _coded_photo(images / "p.png", orientation)
    shown = read_image(images / "p.png").astype(int)  # shown pixel -> stored (x, y) in channels 0, 1
    stored = np.zeros((5, 9), bool)
    stored[1:4, 2:4] = stored[3, 2:8] = True  # an L: no symmetry hides a wrong turn
    painted = stroke_pixels([(1.2, 0.7), (6.6, 2.4)], 1.0, (5, 9))
    version1 = {"format": "clicksam-annotations", "version": 1, "image": "p.png", "width": 9, "height": 5,
                "objects": [{"id": 1, "label": "cup", "method": "sam", "mask": mask_to_rle(stored), "actions": [
                    {"kind": "click", "x": 2, "y": 3}, {"kind": "box", "box": [1, 0, 6, 3]},
                    {"kind": "stroke", "mode": "paint", "radius": 1.0, "points": [[1.2, 0.7], [6.6, 2.4]],
                     "changed": mask_to_rle(painted)},
                    {"kind": "reset", "mask": mask_to_rle(stored), "score": 0.5}], "redo": []}]}
    store = AnnotationStore(tmp_path / "ann", images=images)
    (store.root / "p.png.json").write_text(json.dumps(version1))
    migrated = store.load("p.png")
    assert (migrated.height, migrated.width) == shown.shape[:2]

    def stored_of(mask):  # the stored pixels a mask of the shown photo covers
        return {(int(x), int(y)) for x, y in shown[mask][:, :2]}

    record = migrated.objects[0]
    click, box, stroke, reset = record.actions
    expected = {(x, y) for y, x in zip(*np.nonzero(stored))}
    assert stored_of(rle_to_mask(record.mask)) == expected == stored_of(rle_to_mask(reset.mask))
    assert tuple(shown[int(click.y), int(click.x), :2]) == (2, 3) and click.x == int(click.x)
    x0, y0, x1, y1 = (int(v) for v in box.box)
    in_box = np.zeros(shown.shape[:2], bool)
    in_box[y0:y1 + 1, x0:x1 + 1] = True  # corner pixels included
    assert stored_of(in_box) == {(x, y) for x in range(1, 7) for y in range(4)}
    assert stored_of(stroke_pixels(stroke.points, 1.0, shown.shape[:2])) == {(x, y) for y, x in zip(*np.nonzero(painted))}
    assert stored_of(rle_to_mask(stroke.changed)) == {(x, y) for y, x in zip(*np.nonzero(painted))}
    again = json.loads((store.root / "p.png.json").read_text())
    assert again["version"] == 2 and (again["width"], again["height"]) == (shown.shape[1], shown.shape[0])
    assert store.load("p.png") == migrated  # migrated once: a version-2 file is read as it is
