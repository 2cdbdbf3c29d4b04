"""Dataset loaders: the shared benchmark sets and small fixtures of the other formats."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from clicksam.eval.datasets import (
    DatasetError, FolderDataset, ForegroundRule, HQSeg44KDataset, canonical_dataset_name, load_dataset,
)


def write_image(path: Path, h: int = 20, w: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def write_palette(path: Path, indices: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(indices.astype(np.uint8), mode="P")
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0, 0, 0] * 251 + [224, 224, 192]
    img.putpalette(palette)
    img.save(path)


# ---- the shared benchmark sets --------------------------------------------------------------

def test_grabcut_has_50_objects_and_its_ignore_band(shared_dir):
    ds = load_dataset("GrabCut", shared_dir / "data")
    assert len(ds) == 50
    with_band = 0
    for obj in ds.objects[:12]:
        image, gt = ds.load(obj)
        assert image.dtype == np.uint8 and image.shape[:2] == gt.shape
        assert set(np.unique(gt)) <= {-1, 0, 1}
        raw = cv2.imread(str(obj.mask_path), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(gt == -1, raw == 128)
        np.testing.assert_array_equal(gt == 1, raw > 128)
        with_band += bool((gt == -1).any())
    assert with_band > 0


def test_berkeley_has_100_objects_with_threshold_128(shared_dir):
    ds = load_dataset("berkeley", shared_dir / "data")
    assert len(ds) == 100
    obj = next(o for o in ds.objects if o.object_id == "8023")  # the anti-aliased file
    image, gt = ds.load(obj)
    raw = cv2.imread(str(obj.mask_path))[:, :, 0]
    np.testing.assert_array_equal(gt == 1, raw > 128)
    assert not (gt == -1).any()


def test_davis_has_345_objects_and_any_nonzero_index_is_object(shared_dir):
    ds = load_dataset("DAVIS", shared_dir / "data" / "DAVIS")  # the dataset folder itself works too
    assert len(ds) == 345
    obj = next(o for o in ds.objects if o.object_id == "195")  # holds palette index 255
    image, gt = ds.load(obj)
    assert image.shape == (480, 854, 3)
    indices = np.array(Image.open(obj.mask_path))
    np.testing.assert_array_equal(gt == 1, indices > 0)
    assert (indices == 255).any() and (indices == 2).any()


# ---- fixtures for the other formats --------------------------------------------------------

def test_sbd_objects_per_instance(tmp_path):
    from scipy.io import savemat

    inst = np.zeros((20, 30), dtype=np.uint8)
    inst[2:6, 2:6] = 1
    inst[10:15, 10:20] = 3
    for name in ("a", "b"):
        write_image(tmp_path / "img" / f"{name}.jpg")
        seg = inst if name == "a" else (inst == 3).astype(np.uint8)
        (tmp_path / "inst").mkdir(exist_ok=True)
        savemat(tmp_path / "inst" / f"{name}.mat",
                {"GTinst": {"Segmentation": seg, "Boundaries": np.zeros(1), "Categories": np.ones(1)}})
    (tmp_path / "val.txt").write_text("a\nb\n")
    ds = load_dataset("SBD", tmp_path)
    assert [o.object_id for o in ds.objects] == ["a#1", "a#3", "b#1"]
    _, gt = ds.load(ds.objects[1])
    np.testing.assert_array_equal(gt, (inst == 3).astype(np.int8))


def test_pascal_voc_border_is_ignored(tmp_path):
    indices = np.zeros((20, 30), dtype=np.uint8)
    indices[2:8, 2:8] = 1
    indices[1, 1:9] = 255
    indices[10:15, 10:20] = 2
    write_image(tmp_path / "JPEGImages" / "2007_000001.jpg")
    write_palette(tmp_path / "SegmentationObject" / "2007_000001.png", indices)
    split = tmp_path / "ImageSets" / "Segmentation"
    split.mkdir(parents=True)
    (split / "val.txt").write_text("2007_000001\n")
    ds = load_dataset("PascalVOC", tmp_path)
    assert [o.object_id for o in ds.objects] == ["2007_000001#1", "2007_000001#2"]
    _, gt = ds.load(ds.objects[0])
    assert (gt == -1).sum() == 8 and (gt == 1).sum() == 36


def test_coco_mval_and_hqseg_layouts(tmp_path):
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[5:10, 5:10] = 255
    mask[0, 0] = 100  # below HQ-SAM's > 128 threshold, but nonzero for COCO-MVal
    write_image(tmp_path / "COCO_MVal" / "img" / "x.jpg")
    (tmp_path / "COCO_MVal" / "gt").mkdir()
    cv2.imwrite(str(tmp_path / "COCO_MVal" / "gt" / "x.png"), mask)
    coco = load_dataset("coco-mval", tmp_path)
    _, gt = coco.load(coco.objects[0])
    assert (gt == 1).sum() == 26
    hq = tmp_path / "sam-hq"
    layouts = {"DIS5K/DIS-VD": ("im", "gt"), "thin_object_detection/ThinObject5K": ("images_test", "masks_test"),
               "thin_object_detection/COIFT": ("images", "masks"), "thin_object_detection/HRSOD": ("images", "masks")}
    for sub, (im, gtd) in layouts.items():
        write_image(hq / sub / im / "s.jpg")
        (hq / sub / gtd).mkdir(parents=True)
        cv2.imwrite(str(hq / sub / gtd / "s.png"), mask)
    ds = load_dataset("HQSeg44K", tmp_path)
    assert isinstance(ds, HQSeg44KDataset)
    assert [o.object_id for o in ds.objects] == ["DIS-VD/s", "ThinObject5K/s", "COIFT/s", "HRSOD/s"]
    _, gt = ds.load(ds.objects[2])
    assert (gt == 1).sum() == 25
    assert len(load_dataset("coift", tmp_path)) == 1


def test_folder_dataset_rules(tmp_path):
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[2:6, 2:6] = 200
    mask[6, 2:6] = 128
    write_image(tmp_path / "im" / "k.png")
    (tmp_path / "gt").mkdir()
    cv2.imwrite(str(tmp_path / "gt" / "k.png"), mask)
    ds = FolderDataset(tmp_path / "im", tmp_path / "gt", ForegroundRule("gt:128", ignore=128))
    _, gt = ds.load(ds.objects[0])
    assert (gt == 1).sum() == 16 and (gt == -1).sum() == 4
    _, gt = FolderDataset(tmp_path / "im", tmp_path / "gt").load(ds.objects[0])
    assert (gt == 1).sum() == 20
    with pytest.raises(ValueError, match="foreground rule"):
        ForegroundRule("threshold")


# ---- errors that name the file ---------------------------------------------------------------

def test_missing_folder_image_without_mask_and_wrong_size(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset("GrabCut", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        canonical_dataset_name("ImageNet")
    root = tmp_path / "GrabCut"
    write_image(root / "data_GT" / "a.jpg")
    write_image(root / "data_GT" / "b.jpg")
    (root / "boundary_GT").mkdir()
    small = np.zeros((10, 10), np.uint8)
    small[2:5, 2:5] = 255
    cv2.imwrite(str(root / "boundary_GT" / "a.bmp"), small)
    with pytest.raises(DatasetError, match=r"b\.jpg has no mask"):
        load_dataset("GrabCut", tmp_path).objects
    (root / "data_GT" / "b.jpg").unlink()
    ds = load_dataset("GrabCut", tmp_path)
    with pytest.raises(DatasetError, match=r"a\.bmp is 10x10"):
        ds.load(ds.objects[0])
    cv2.imwrite(str(root / "boundary_GT" / "a.bmp"), np.zeros((20, 30), np.uint8))
    with pytest.raises(DatasetError, match="empty"):
        ds.load(ds.objects[0])
    (root / "boundary_GT" / "a.bmp").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"cannot decode mask file .*a\.bmp"):
        ds.load(ds.objects[0])
