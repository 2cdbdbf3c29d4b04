"""Miniature training and benchmark datasets in exactly the layouts the real archives unpack to.

Each builder writes a few small images with real-looking names, annotation files with the real
fields (COCO panoptic PNG + JSON, LVIS v1 JSON, COCO instance JSON with polygons and RLE, SBD
``.mat`` structs, the HQSeg-44K folders of HQ-SAM's ``data/``) under a root, so that a reader, a
recipe or an evaluation command that gets a path or a field wrong fails here, not on a user's GPU.

Sources of the layouts: FocSAM's DATASETS.md (``data/coco2017``, ``data/lvis``), HQ-SAM's
train/README.md and train.py (``data/{DIS5K,cascade_psp,thin_object_detection}``), the SBD
release (``benchmark_RELEASE/dataset/{img,inst,cls,train.txt,val.txt}``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from clicksam.io.rle import mask_to_runs


def _scene(h: int, w: int, seed: int) -> np.ndarray:
    """An H×W×3 uint8 photo stand-in: a smooth gradient with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) * 127 // max(h + w - 2, 1)], -1)
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _jpeg(path: Path, h: int, w: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_scene(h, w, seed)).save(path, quality=90)


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _polygon(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """A closed quadrilateral as COCO writes it: x1, y1, x2, y2, ... (a slanted box)."""
    return [x0, y0, x1, y0 + 2.0, x1 - 2.0, y1, x0 + 1.0, y1 - 1.0]


COCO_IDS = (9, 25, 30)  # real COCO train2017 image ids; files are named by the 12-digit id


def coco_panoptic(root: Path) -> Path:
    """``root`` = ``data/coco2017``: ``annotations/panoptic_train2017.json``, the PNGs in
    ``annotations/panoptic_train2017/`` (segment id = R + 256·G + 256²·B, 0 = void) and the
    images in ``train2017/``. Per image: two things, one stuff segment, and on the first image a
    crowd segment."""
    categories = [
        {"supercategory": "person", "isthing": 1, "id": 1, "name": "person", "color": [220, 20, 60]},
        {"supercategory": "animal", "isthing": 1, "id": 18, "name": "dog", "color": [0, 226, 252]},
        {"supercategory": "plant", "isthing": 0, "id": 184, "name": "tree-merged", "color": [107, 142, 35]},
    ]
    images, annotations = [], []
    for n, image_id in enumerate(COCO_IDS):
        h, w = 60 + 8 * n, 80
        name = f"{image_id:012d}"
        _jpeg(root / "train2017" / f"{name}.jpg", h, w, seed=image_id)
        masks = [
            (_ellipse(h, w, h * 0.35, w * 0.3, h * 0.2, w * 0.15), 1, 0),
            (_ellipse(h, w, h * 0.6, w * 0.7, h * 0.22, w * 0.2), 18, 0),
        ]
        stuff = np.zeros((h, w), bool)
        stuff[int(h * 0.85):, :] = True
        masks.append((stuff & ~masks[0][0] & ~masks[1][0], 184, 0))
        if n == 0:
            crowd = np.zeros((h, w), bool)
            crowd[:6, w - 20:] = True
            masks.append((crowd, 1, 1))
        ids = np.zeros((h, w), np.int64)
        segments = []
        for k, (mask, category, iscrowd) in enumerate(masks):
            segment_id = 3226956 + 65536 * n + 257 * k  # colours like the real files
            ids[mask] = segment_id
            segments.append({"id": segment_id, "category_id": category, "iscrowd": iscrowd,
                             "bbox": _bbox(mask), "area": int(mask.sum())})
        rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], -1).astype(np.uint8)
        png = root / "annotations" / "panoptic_train2017" / f"{name}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(png)
        images.append({"license": 1, "file_name": f"{name}.jpg", "coco_url": f"http://images.cocodataset.org/train2017/{name}.jpg",
                       "height": h, "width": w, "date_captured": "2013-11-19 23:37:46", "flickr_url": "", "id": image_id})
        annotations.append({"segments_info": segments, "file_name": f"{name}.png", "image_id": image_id})
    data = {"info": {"description": "COCO 2018 Panoptic Dataset", "version": "1.0", "year": 2018},
            "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, "name": "CC BY-NC-SA 2.0"}],
            "images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "panoptic_train2017.json").write_text(json.dumps(data))
    return root


def lvis(root: Path) -> Path:
    """``root`` = ``data/lvis``: ``lvis_v1_train.json`` (images named only by ``coco_url``,
    polygon segmentations, several polygons per object, no ``iscrowd``) and ``train2017/``."""
    images, annotations = [], []
    ann_id = 1
    for n, image_id in enumerate(COCO_IDS):
        h, w = 60 + 8 * n, 80
        name = f"{image_id:012d}.jpg"
        _jpeg(root / "train2017" / name, h, w, seed=image_id)
        images.append({"date_captured": "2013-11-19 23:37:46", "neg_category_ids": [], "id": image_id, "license": 1,
                       "height": h, "width": w, "flickr_url": "", "coco_url": f"http://images.cocodataset.org/train2017/{name}",
                       "not_exhaustive_category_ids": []})
        parts = [_polygon(5, 5, 35, 30), _polygon(40, 8, 60, 25)]  # one object in two pieces
        for segmentation in ([parts[0], parts[1]], [_polygon(20, 34, 70, 55)]):
            annotations.append({"area": 900.0, "id": ann_id, "segmentation": segmentation, "image_id": image_id,
                                "bbox": [5.0, 5.0, 55.0, 25.0], "category_id": 3})
            ann_id += 1
    categories = [{"synonyms": ["aerosol_can"], "def": "a dispenser", "id": 3, "synset": "aerosol.n.02",
                   "name": "aerosol_can", "frequency": "c", "image_count": 64, "instance_count": 109}]
    (root / "lvis_v1_train.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "lvis_v1_train.json").write_text(json.dumps({"info": {"version": "1.0"}, "images": images,
                                                         "annotations": annotations, "categories": categories,
                                                         "licenses": []}))
    return root


def coco_instances(root: Path) -> Path:
    """``root`` = ``data/coco2017``: ``annotations/instances_train2017.json`` with polygon objects,
    a crowd object in uncompressed RLE (as COCO writes crowds) and an object in compressed RLE
    (as COCO-format exports of other tools write masks), images in ``train2017/``."""
    from pycocotools import mask as mask_utils

    images, annotations = [], []
    for n, image_id in enumerate(COCO_IDS):
        h, w = 60 + 8 * n, 80
        name = f"{image_id:012d}.jpg"
        if not (root / "train2017" / name).is_file():
            _jpeg(root / "train2017" / name, h, w, seed=image_id)
        images.append({"license": 1, "file_name": name, "height": h, "width": w, "id": image_id})
        annotations.append({"segmentation": [_polygon(5, 5, 40, 35)], "area": 1000.0, "iscrowd": 0, "image_id": image_id,
                            "bbox": [5.0, 5.0, 35.0, 30.0], "category_id": 1, "id": 100 + n})
    h, w = images[0]["height"], images[0]["width"]
    crowd = _ellipse(h, w, 40, 60, 10, 12)
    runs = mask_to_runs(crowd.T)["counts"]  # COCO's uncompressed RLE runs column by column
    annotations.append({"segmentation": {"counts": runs, "size": [h, w]}, "area": float(crowd.sum()), "iscrowd": 1,
                        "image_id": COCO_IDS[0], "bbox": _bbox(crowd), "category_id": 1, "id": 200})
    blob = np.asfortranarray(_ellipse(h, w, 45, 25, 12, 14).astype(np.uint8))
    rle = mask_utils.encode(blob)
    rle["counts"] = rle["counts"].decode("ascii")
    annotations.append({"segmentation": rle, "area": float(blob.sum()), "iscrowd": 0, "image_id": COCO_IDS[0],
                        "bbox": _bbox(blob > 0), "category_id": 18, "id": 201})
    data = {"info": {"description": "COCO 2017 Dataset"}, "licenses": [], "images": images, "annotations": annotations,
            "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                           {"supercategory": "animal", "id": 18, "name": "dog"}]}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(data))
    return root


SBD_TRAIN = ("2008_000002", "2008_000003")
SBD_VAL = ("2008_000009",)


def _sbd_mat(path: Path, segmentation: np.ndarray, categories: list[int], kind: str) -> None:
    """An SBD ``.mat``: struct ``GTinst`` (Segmentation, Boundaries, Categories) or ``GTcls``
    (Segmentation, Boundaries, CategoriesPresent), Boundaries a cell of sparse matrices."""
    from scipy.io import savemat
    from scipy.sparse import csc_matrix

    ids = [int(i) for i in np.unique(segmentation) if i not in (0, 255)]
    boundaries = np.empty((len(ids), 1), dtype=object)
    for row, i in enumerate(ids):
        boundaries[row, 0] = csc_matrix(segmentation == i)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "inst":
        savemat(str(path), {"GTinst": {"Segmentation": segmentation, "Boundaries": boundaries,
                                       "Categories": np.array(categories, np.uint8).reshape(-1, 1)}})
    else:
        savemat(str(path), {"GTcls": {"Segmentation": segmentation, "Boundaries": boundaries,
                                      "CategoriesPresent": np.array(sorted(set(categories)), np.uint8).reshape(-1, 1)}})


def sbd(root: Path) -> Path:
    """``root`` = ``benchmark_RELEASE/dataset``: ``img/*.jpg``, ``inst/*.mat`` (GTinst),
    ``cls/*.mat`` (GTcls), ``train.txt``, ``val.txt``; two instances per image."""
    for n, name in enumerate(SBD_TRAIN + SBD_VAL):
        h, w = 64, 72 + 8 * n
        _jpeg(root / "img" / f"{name}.jpg", h, w, seed=100 + n)
        inst = np.zeros((h, w), np.uint8)
        inst[_ellipse(h, w, 20, 20, 12, 14)] = 1
        inst[_ellipse(h, w, 44, 50, 14, 16)] = 2
        _sbd_mat(root / "inst" / f"{name}.mat", inst, [15, 12], "inst")
        cls = np.where(inst == 1, 15, np.where(inst == 2, 12, 0)).astype(np.uint8)
        _sbd_mat(root / "cls" / f"{name}.mat", cls, [15, 12], "cls")
    (root / "train.txt").write_text("".join(f"{n}\n" for n in SBD_TRAIN))
    (root / "val.txt").write_text("".join(f"{n}\n" for n in SBD_VAL))
    return root


def _mask_png(path: Path, mask: np.ndarray) -> None:
    """A 0/255 gray mask with an anti-aliased rim (values in between), as the real masks have."""
    from scipy.ndimage import binary_dilation

    values = np.where(mask, 255, 0).astype(np.uint8)
    values[binary_dilation(mask) & ~mask] = 96
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values).save(path)


# (folder of images, folder of masks, file stems) relative to HQ-SAM's data/; same folder = side by side
HQSEG_TRAIN_FILES = {
    "DIS5K-TR": ("DIS5K/DIS-TR/im", "DIS5K/DIS-TR/gt", ["1#Accessories#1#Bag#2339506821_83cf9f1d22_o"]),
    "ThinObject5K-TR": ("thin_object_detection/ThinObject5K/images_train",
                        "thin_object_detection/ThinObject5K/masks_train", ["bicycle_0003"]),
    "FSS": ("cascade_psp/fss_all", "cascade_psp/fss_all", ["abacus_1"]),
    "DUTS-TR": ("cascade_psp/DUTS-TR", "cascade_psp/DUTS-TR", ["ILSVRC2012_test_00000004"]),
    "DUTS-TE": ("cascade_psp/DUTS-TE", "cascade_psp/DUTS-TE", ["ILSVRC2012_test_00000003"]),
    "ECSSD": ("cascade_psp/ecssd", "cascade_psp/ecssd", ["0001"]),
    "MSRA10K": ("cascade_psp/MSRA_10K", "cascade_psp/MSRA_10K", ["75"]),
}
HQSEG_VAL_FILES = {
    "DIS-VD": ("DIS5K/DIS-VD/im", "DIS5K/DIS-VD/gt", ["2#Aircraft#1#Airplane#3883093766_6a1ec3cbf6_o"]),
    "ThinObject5K": ("thin_object_detection/ThinObject5K/images_test",
                     "thin_object_detection/ThinObject5K/masks_test", ["chair_0012"]),
    "COIFT": ("thin_object_detection/COIFT/images", "thin_object_detection/COIFT/masks", ["bird_01"]),
    "HRSOD": ("thin_object_detection/HRSOD/images", "thin_object_detection/HRSOD/masks_max255", ["00002"]),
}


def hqseg(root: Path) -> Path:
    """``root`` = HQ-SAM's ``data/`` (here ``data/sam-hq``): the seven HQSeg-44K training folders
    and the four validation sets, ``.jpg`` images and ``.png`` masks with the same stem."""
    seed = 0
    for images, masks, stems in list(HQSEG_TRAIN_FILES.values()) + list(HQSEG_VAL_FILES.values()):
        for stem in stems:
            seed += 1
            h, w = 56 + 4 * (seed % 3), 72
            _jpeg(root / images / f"{stem}.jpg", h, w, seed=200 + seed)
            _mask_png(root / masks / f"{stem}.png", _ellipse(h, w, h / 2, w / 2, h / 3, w / 4))
    return root


def build_workspace(root: Path) -> Path:
    """Every dataset above under ``root/data``, as the recipes and the guide's commands expect."""
    data = root / "data"
    coco_panoptic(data / "coco2017")
    coco_instances(data / "coco2017")
    lvis(data / "lvis")
    sbd(data / "sbd" / "benchmark_RELEASE" / "dataset")
    hqseg(data / "sam-hq")
    return root
