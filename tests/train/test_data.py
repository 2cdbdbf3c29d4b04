"""Data readers, sample assembly, augmentation and the resumable batch order."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clicksam.train.data import GlobalBatchSampler, ObjectDataset, PhotometricAugment, collate, downsample_target
from clicksam.train.readers import build_source
from clicksam.train.synthetic import make_scene


def _write_image(path: Path, h: int, w: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _coco(tmp_path: Path) -> Path:
    from pycocotools import mask as mask_utils

    _write_image(tmp_path / "train2017" / "a.jpg", 60, 80)
    _write_image(tmp_path / "train2017" / "b.jpg", 50, 40)
    square = np.zeros((50, 40), np.uint8, order="F")
    square[10:30, 5:25] = 1
    rle = mask_utils.encode(square)
    rle["counts"] = rle["counts"].decode()
    runs = [0] * 0
    flat = square.flatten(order="F")
    value, count = 0, 0
    for v in flat:
        if v != value:
            runs.append(count)
            value, count = v, 0
        count += 1
    runs.append(count)
    anns = [
        {"id": 1, "image_id": 1, "segmentation": [[10, 10, 50, 10, 50, 40, 10, 40]], "area": 1200, "iscrowd": 0},
        {"id": 2, "image_id": 2, "segmentation": rle, "area": 400, "iscrowd": 0},
        {"id": 3, "image_id": 2, "segmentation": {"counts": runs, "size": [50, 40]}, "area": 400, "iscrowd": 0},
        {"id": 4, "image_id": 1, "segmentation": [[1, 2, 3]], "area": 500, "iscrowd": 0},  # malformed
        {"id": 5, "image_id": 1, "segmentation": [[0, 0, 5, 0, 5, 5]], "area": 12, "iscrowd": 0},  # small
        {"id": 6, "image_id": 1, "segmentation": rle, "area": 400, "iscrowd": 1},  # crowd
        {"id": 7, "image_id": 9, "segmentation": rle, "area": 400, "iscrowd": 0},  # unknown image
    ]
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 60, "width": 80},
                       {"id": 2, "file_name": "b.jpg", "height": 50, "width": 40}],
            "annotations": anns, "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps(data))
    return tmp_path


def test_coco_reader_decodes_polygons_and_rle_and_counts_invalid(tmp_path):
    source = build_source({"type": "coco", "root": str(_coco(tmp_path))}, min_area=100)
    assert len(source) == 3
    assert source.skipped == {"malformed segmentation": 1, "smaller than min_area": 1, "crowd": 1, "unknown image": 1}
    rng = np.random.default_rng(0)
    poly = source.load_object(0, rng)
    assert poly.mask.shape == (60, 80) and 1000 < poly.mask.sum() < 1400
    compressed, uncompressed = source.load_object(1, rng), source.load_object(2, rng)
    assert compressed.mask.sum() == 400 and np.array_equal(compressed.mask, uncompressed.mask)
    assert source.image_keys() == ["coco/a.jpg", "coco/b.jpg"]


def test_panoptic_reader(tmp_path):
    _write_image(tmp_path / "train2017" / "img.jpg", 30, 40)
    ids = np.zeros((30, 40), np.int64)
    ids[5:20, 5:20] = 1 + 256 * 2  # a thing
    ids[20:30, :] = 7  # a crowd segment
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], -1).astype(np.uint8)
    (tmp_path / "annotations" / "panoptic_train2017").mkdir(parents=True)
    Image.fromarray(rgb).save(tmp_path / "annotations" / "panoptic_train2017" / "img.png")
    data = {"annotations": [{"file_name": "img.png", "segments_info": [
        {"id": 513, "category_id": 1, "area": 225, "iscrowd": 0},
        {"id": 7, "category_id": 1, "area": 400, "iscrowd": 1}]}],
        "categories": [{"id": 1, "isthing": 1}]}
    (tmp_path / "annotations" / "panoptic_train2017.json").write_text(json.dumps(data))
    source = build_source({"type": "coco-panoptic", "root": str(tmp_path)}, min_area=50)
    assert len(source) == 1 and source.skipped == {"crowd": 1}
    obj = source.load_object(0, np.random.default_rng(0))
    assert obj.mask.sum() == 225 and obj.ignore.sum() == 400


def test_sbd_reader_draws_an_instance(tmp_path):
    from scipy.io import savemat

    _write_image(tmp_path / "img" / "2008_000001.jpg", 30, 30)
    inst = np.zeros((30, 30), np.uint8)
    inst[0:10, 0:10] = 1
    inst[15:30, 15:30] = 2
    inst[20, 0:3] = 3  # too small
    (tmp_path / "inst").mkdir()
    savemat(tmp_path / "inst" / "2008_000001.mat", {"GTinst": {"Segmentation": inst, "Categories": np.array([[1], [2], [3]])}})
    (tmp_path / "train.txt").write_text("2008_000001\n")
    source = build_source({"type": "sbd", "root": str(tmp_path)}, min_area=50)
    areas = {int(source.load_object(0, np.random.default_rng(s)).mask.sum()) for s in range(20)}
    assert areas == {100, 225}


def test_folder_and_hqseg_readers(tmp_path):
    for stem in ("x", "y"):
        _write_image(tmp_path / "images" / f"{stem}.jpg", 20, 30)
    m = np.zeros((20, 30), np.uint8)
    m[2:12, 3:20] = 255
    (tmp_path / "masks").mkdir()
    Image.fromarray(m).save(tmp_path / "masks" / "x.png")
    source = build_source({"type": "folder", "root": str(tmp_path)})
    assert len(source) == 1 and source.skipped == {"image without mask": 1}
    assert source.load_object(0, np.random.default_rng(0)).mask.sum() == 170
    hq = tmp_path / "hq" / "cascade_psp" / "ecssd"
    _write_image(hq / "0001.jpg", 20, 30)
    Image.fromarray(m).save(hq / "0001.png")
    hqseg = build_source({"type": "hqseg", "root": str(tmp_path / "hq")})
    assert len(hqseg) == 1 and "DIS5K-TR" in hqseg.missing
    assert hqseg.load_object(0, np.random.default_rng(0)).mask.sum() == 170
    with pytest.raises(FileNotFoundError, match="HQSeg-44K"):
        build_source({"type": "hqseg", "root": str(tmp_path / "nothing")})
    with pytest.raises(ValueError, match="dataset type"):
        build_source({"type": "imagenet", "root": "."})


def test_dataset_samples_are_deterministic_and_padded():
    source = build_source({"type": "synthetic", "count": 4, "seed": 3})
    ds = ObjectDataset([source], seed=1, min_area=50, augment=PhotometricAugment())
    a, b = ds[(0, 2)], ds[(0, 2)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    h, w = a["input_size"].tolist()
    assert max(h, w) == 1024
    assert a["target"].shape == (1, 1024, 1024) and a["target"].dtype == torch.int8
    assert (a["target"][0, h:, :] == -1).all() and (a["target"][0, :, w:] == -1).all()
    assert (a["image"][:, h:, :] == 0).all()
    scene = make_scene(3, 2)
    assert a["target"][0, :h, :w].eq(1).sum().item() == pytest.approx(scene.mask.sum() * (h / scene.mask.shape[0]) ** 2, rel=0.15)
    other_epoch = ds[(1, 2)]
    assert not torch.equal(a["image"], other_epoch["image"])  # augmentation differs per epoch
    assert torch.equal(a["target"], other_epoch["target"])
    batch = collate([a, b])
    assert batch["target"].shape == (2, 1, 1024, 1024)
    grid = downsample_target(batch["target"], 256)
    assert grid.shape == (2, 1, 256, 256) and set(grid.unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_small_objects_are_replaced_and_counted():
    source = build_source({"type": "synthetic", "count": 6, "seed": 0})
    areas = [int(make_scene(0, i).mask.sum()) for i in range(6)]
    ds = ObjectDataset([source], min_area=sorted(areas)[3], with_image=False)
    sample = ds[(0, areas.index(min(areas)))]
    assert sample["skipped"].item() >= 1 and (sample["target"] == 1).any()
    none_big_enough = ObjectDataset([source], min_area=max(areas) + 1, with_image=False)
    with pytest.raises(RuntimeError, match="min_area"):
        none_big_enough[(0, 0)]


def test_global_batches_split_across_ranks_and_resume():
    one = GlobalBatchSampler(10, 4, seed=5)
    ranks = [GlobalBatchSampler(10, 4, rank=r, world_size=2, seed=5) for r in range(2)]
    for step in range(6):
        assert one.batch(step) == ranks[0].batch(step) + ranks[1].batch(step)
    it = iter(GlobalBatchSampler(10, 4, seed=5, start_step=3))
    assert next(it) == one.batch(3)
    epoch0 = {i for s in range(2) for _, i in one.batch(s)}
    assert len(epoch0) == 8  # no repeats within an epoch
    with pytest.raises(ValueError, match="divisible"):
        GlobalBatchSampler(10, 3, world_size=2)


def test_rendered_synthetic_serves_the_scenes_drawn_once(tmp_path):
    """``synthetic-rendered``: scenes drawn at the frame's size (the image as SAM resizes it, the
    mask nearest-neighbour), the same from memory and from the cache files, and the dataset's
    resize to that frame is the identity."""
    import cv2

    from clicksam.transforms import ResizeLongestSide

    spec = {"type": "synthetic-rendered", "count": 3, "seed": 5, "render": 64}
    memory = build_source(spec)
    cached = build_source({**spec, "cache": str(tmp_path)})
    assert len(list(tmp_path.glob("synthetic_v1_5_3_64_*.npy"))) == 3
    again = build_source({**spec, "cache": str(tmp_path)})  # read back, memory-mapped
    assert isinstance(again.images, np.memmap)
    scene = make_scene(5, 2)
    image = ResizeLongestSide(64).apply_image(scene.image)
    h, w = image.shape[:2]
    mask = cv2.resize(scene.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    for source in (memory, cached, again):
        raw = source.load_object(2, np.random.default_rng(0))
        assert np.array_equal(raw.image, image) and np.array_equal(raw.mask, mask)
        assert raw.image_key == "synthetic-5@64/000002" and source.image_keys()[2] == raw.image_key
        assert np.array_equal(source.read_image(raw.image_key), image)
    sample = ObjectDataset([again], image_size=64, min_area=1)[(0, 2)]
    assert torch.equal(sample["target"][0, :h, :w], torch.from_numpy(mask.astype(np.int8)))
    assert torch.equal(sample["image"][:, :h, :w], torch.from_numpy(image).permute(2, 0, 1))
    parallel = build_source({**spec, "workers": 2})  # drawn by two processes: the same arrays
    assert np.array_equal(parallel.images, memory.images) and np.array_equal(parallel.sizes, memory.sizes)
    with pytest.raises(ValueError, match="count >= 1"):
        build_source({**spec, "count": 0})


def test_sample_random_subset_shares_the_streams():
    from clicksam.train.prompts import SampleRandom

    whole, reference = SampleRandom([3, 4, 5]), SampleRandom([3, 4, 5])
    part = whole.subset([2, 0])
    first = part.uniform(2)
    expected = reference.uniform(2)
    assert torch.equal(first, expected[[2, 0]])
    assert torch.equal(whole.uniform()[[0, 2]], reference.uniform()[[0, 2]])  # the subset advanced samples 0 and 2
