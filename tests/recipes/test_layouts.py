"""The miniature datasets in the real layouts are read as the real ones would be: every training
reader and the evaluation loaders the guides use (fast; the recipe runs are in test_recipes)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clicksam.eval.datasets import load_dataset
from clicksam.train.readers import build_source

from .layouts import HQSEG_TRAIN_FILES, build_workspace


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("layouts")) / "data"


def _objects(spec):
    source = build_source(spec)
    rng = np.random.default_rng(0)
    return source, [source.load_object(i, rng) for i in range(len(source))]


def test_coco_panoptic_takes_things_and_stuff_and_ignores_crowds(data):
    source, objects = _objects({"type": "coco-panoptic", "root": str(data / "coco2017"), "include_stuff": True})
    assert len(source) == 9 and source.skipped == {"crowd": 1}  # 3 images × (2 things + 1 stuff), 1 crowd
    assert all(o is not None and o.mask.any() for o in objects)
    assert objects[0].ignore is not None and objects[0].ignore.any()  # the crowd segment's pixels
    things, _ = _objects({"type": "coco-panoptic", "root": str(data / "coco2017")})
    assert len(things) == 6 and things.skipped["stuff"] == 3


def test_lvis_finds_images_by_coco_url_and_merges_polygons(data):
    source, objects = _objects({"type": "lvis", "root": str(data / "lvis")})
    assert len(source) == 6 and not source.skipped
    two_pieces = objects[0].mask
    assert two_pieces[10, 20] and two_pieces[15, 50]  # both polygons of the first object


def test_coco_instances_polygons_and_rle(data):
    source, objects = _objects({"type": "coco", "root": str(data / "coco2017")})
    assert len(source) == 4 and source.skipped == {"crowd": 1}  # 3 polygons + 1 compressed RLE
    assert all(o is not None and o.mask.sum() > 100 for o in objects)


def test_sbd_train_and_val(data):
    source, objects = _objects({"type": "sbd", "root": str(data / "sbd" / "benchmark_RELEASE" / "dataset")})
    assert len(source) == 2 and all(o is not None for o in objects)
    val = load_dataset("SBD", data / "sbd" / "benchmark_RELEASE" / "dataset")
    assert [o.object_id for o in val.objects] == ["2008_000009#1", "2008_000009#2"]


def test_hqseg_train_folders_and_validation_sets(data):
    source, objects = _objects({"type": "hqseg", "root": str(data / "sam-hq")})
    assert len(source) == len(HQSEG_TRAIN_FILES) and source.missing == []
    assert all(o is not None and o.mask.any() for o in objects)
    hq = load_dataset("HQSeg44K", data)  # finds data/sam-hq
    assert [o.object_id.split("/")[0] for o in hq.objects] == ["DIS-VD", "ThinObject5K", "COIFT", "HRSOD"]
    for obj in hq.objects:
        assert (hq.decode_gt(obj) == 1).sum() > 100


def test_hrsod_reads_hq_sams_masks_max255(data, tmp_path):
    """HQ-SAM's data/ has HRSOD/masks_max255 (0/255); a masks/ folder beside it is not preferred."""
    import shutil

    root = tmp_path / "sam-hq"
    shutil.copytree(data / "sam-hq" / "thin_object_detection" / "HRSOD", root / "thin_object_detection" / "HRSOD")
    masks = root / "thin_object_detection" / "HRSOD" / "masks"
    masks.mkdir()
    for path in (root / "thin_object_detection" / "HRSOD" / "masks_max255").iterdir():
        values = np.asarray(Image.open(path))
        Image.fromarray((values > 128).astype(np.uint8)).save(masks / path.name)  # 0/1: empty under gt:128
    hrsod = load_dataset("HRSOD", tmp_path)
    assert (hrsod.decode_gt(hrsod.objects[0]) == 1).sum() > 100
