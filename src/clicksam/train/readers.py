"""Readers of training datasets; each is an :class:`~clicksam.train.data.ObjectSource`.

Layouts (paths relative to the dataset ``root``; every default can be overridden):

* ``coco`` / ``lvis``: instance JSON (polygons, RLE or uncompressed RLE) at
  ``annotations/instances_train2017.json`` (LVIS: ``lvis_v1_train.json``), images in
  ``train2017/`` (LVIS images are COCO's, found by the file name of ``coco_url``). One sample per
  annotation; crowd annotations are skipped.
* ``coco-panoptic``: ``annotations/panoptic_train2017.json`` with PNGs in
  ``annotations/panoptic_train2017/`` and images in ``train2017/``; one sample per segment
  (things only unless ``include_stuff``), crowd segments become ignore pixels.
* ``sbd``: ``img/*.jpg``, ``inst/*.mat`` (``GTinst.Segmentation``), ``train.txt``; one sample per
  image, the instance drawn per sample among those of at least ``min_area`` pixels (as RITM).
* ``hqseg``: HQSeg-44K train (HQ-SAM's layout): DIS5K ``DIS5K/DIS-TR/{im,gt}``,
  ThinObject5K ``thin_object_detection/ThinObject5K/{images_train,masks_train}`` and the
  ``cascade_psp/{fss_all,DUTS-TR,DUTS-TE,ecssd,MSRA_10K}`` folders (image and mask side by side);
  one object per image. Missing subsets are reported, at least one must exist.
* ``folder``: ``images/`` and ``masks/`` matched by file stem; masks are binary (> 127, or a
  nonzero palette index) or, with ``instances=True``, label maps (each value but 0 and 255 an
  object, 255 ignore).
* ``synthetic``: :func:`clicksam.train.synthetic.make_scene` scenes (``count``, ``seed``).
* ``synthetic-rendered``: the same scenes drawn once at longest side ``render`` and served from memory
  (``count``, ``seed``, ``render``, ``cache``: a folder for the rendered arrays).

Annotations found invalid (malformed polygons, missing masks, empty objects) are skipped and
counted in ``source.skipped``; they never stop a run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from clicksam.images import read_image  # always exif_orientation=False here: masks match the stored pixels
from clicksam.train.data import ObjectSource, RawObject
from clicksam.train.synthetic import RenderedSynthetic, SyntheticSource

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def _mask_utils() -> Any:
    try:
        from pycocotools import mask as mask_utils
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("reading COCO/LVIS annotations needs pycocotools: pip install 'clicksam[train]'") from exc
    return mask_utils


def _resolve(root: Path, path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")
    return path


def _read_index_png(path: Path) -> np.ndarray:
    """A mask file as a 2-D array: palette indices for palette images, gray levels otherwise."""
    with Image.open(path) as img:
        if img.mode == "P":
            return np.asarray(img)
        if img.mode in ("I", "I;16", "I;16B"):
            return np.asarray(img).astype(np.int64)
        return np.asarray(img.convert("L"))


def _image_matching(path: Path, shape: tuple[int, ...], with_image: bool) -> tuple[Optional[np.ndarray], bool]:
    """(the image or None when not wanted, whether it matches the annotation's H×W)."""
    if not with_image:
        return None, True
    image = read_image(path, exif_orientation=False)
    return image, image.shape[:2] == tuple(shape)


def _binary(values: np.ndarray, palette: bool) -> np.ndarray:
    return ((values != 0) & (values != 255)) if palette else values > 127


def _valid_segmentation(seg: Any) -> bool:
    if isinstance(seg, list):
        return bool(seg) and all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg)
    return isinstance(seg, dict) and "counts" in seg and isinstance(seg.get("size"), list) and len(seg["size"]) == 2


class CocoInstances(ObjectSource):
    """COCO or LVIS instance annotations (see the module docstring)."""

    def __init__(self, root: str | Path, annotations: str = "annotations/instances_train2017.json",
                 images: str = "train2017", name: str = "coco", min_area: int = 100) -> None:
        super().__init__()
        self.root, self.name = Path(root), name
        ann_path = _resolve(self.root, annotations)
        if not ann_path.is_file():
            raise FileNotFoundError(f"{name} annotation file not found: {ann_path}")
        self.image_dir = _require_dir(_resolve(self.root, images), f"{name} image")
        with open(ann_path, encoding="utf-8") as f:
            data = json.load(f)
        self.images: dict[int, tuple[str, int, int]] = {}
        for img in data.get("images", []):
            file_name = img.get("file_name") or str(img.get("coco_url", "")).rsplit("/", 1)[-1]
            if not file_name or "height" not in img or "width" not in img:
                self.skipped["image entry without file name or size"] += 1
                continue
            self.images[int(img["id"])] = (file_name, int(img["height"]), int(img["width"]))
        self.objects: list[tuple[int, Any]] = []
        for ann in data.get("annotations", []):
            if ann.get("iscrowd", 0):
                self.skipped["crowd"] += 1
            elif int(ann.get("image_id", -1)) not in self.images:
                self.skipped["unknown image"] += 1
            elif not _valid_segmentation(ann.get("segmentation")):
                self.skipped["malformed segmentation"] += 1
            elif float(ann.get("area", min_area)) < min_area:
                self.skipped["smaller than min_area"] += 1
            else:
                self.objects.append((int(ann["image_id"]), ann["segmentation"]))
        self._keys = sorted({self.images[i][0] for i, _ in self.objects})

    def __len__(self) -> int:
        return len(self.objects)

    def image_keys(self) -> list[str]:
        return [f"{self.name}/{k}" for k in self._keys]

    def read_image(self, key: str) -> np.ndarray:
        return read_image(self.image_dir / key.split("/", 1)[1], exif_orientation=False)

    def decode(self, segmentation: Any, height: int, width: int) -> Optional[np.ndarray]:
        """Polygons / RLE / uncompressed RLE -> H×W bool, or None if pycocotools rejects it."""
        mask_utils = _mask_utils()
        try:
            if isinstance(segmentation, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
            elif isinstance(segmentation["counts"], list):
                rle = mask_utils.frPyObjects(segmentation, height, width)
            else:
                rle = dict(segmentation)
                if list(rle["size"]) != [height, width]:
                    return None
            return mask_utils.decode(rle).astype(bool)
        except (TypeError, ValueError, KeyError, IndexError):
            return None

    def load_object(self, index: int, rng: np.random.Generator, with_image: bool = True) -> Optional[RawObject]:
        image_id, segmentation = self.objects[index]
        file_name, height, width = self.images[image_id]
        image, ok = _image_matching(self.image_dir / file_name, (height, width), with_image)
        if not ok:
            return None
        mask = self.decode(segmentation, height, width)
        if mask is None or mask.shape != (height, width):
            return None
        return RawObject(image, mask, None, f"{self.name}/{file_name}")


class CocoPanoptic(ObjectSource):
    """COCO panoptic segments (see the module docstring)."""

    name = "coco-panoptic"

    def __init__(self, root: str | Path, annotations: str = "annotations/panoptic_train2017.json",
                 masks: str = "annotations/panoptic_train2017", images: str = "train2017",
                 include_stuff: bool = False, min_area: int = 100) -> None:
        super().__init__()
        self.root = Path(root)
        ann_path = _resolve(self.root, annotations)
        if not ann_path.is_file():
            raise FileNotFoundError(f"panoptic annotation file not found: {ann_path}")
        self.mask_dir = _require_dir(_resolve(self.root, masks), "panoptic PNG")
        self.image_dir = _require_dir(_resolve(self.root, images), "panoptic image")
        with open(ann_path, encoding="utf-8") as f:
            data = json.load(f)
        things = {int(c["id"]) for c in data.get("categories", []) if c.get("isthing", 1)}
        self.entries: list[tuple[str, str, list[int]]] = []  # image file, png file, crowd ids
        self.objects: list[tuple[int, int]] = []  # (entry, segment id)
        for ann in data.get("annotations", []):
            png = ann.get("file_name")
            if not png or "segments_info" not in ann:
                self.skipped["annotation without file_name/segments_info"] += 1
                continue
            image_file = Path(png).with_suffix(".jpg").name
            crowd = [int(s["id"]) for s in ann["segments_info"] if s.get("iscrowd", 0)]
            entry = len(self.entries)
            self.entries.append((image_file, png, crowd))
            for seg in ann["segments_info"]:
                if seg.get("iscrowd", 0):
                    self.skipped["crowd"] += 1
                elif not include_stuff and int(seg.get("category_id", -1)) not in things:
                    self.skipped["stuff"] += 1
                elif float(seg.get("area", min_area)) < min_area:
                    self.skipped["smaller than min_area"] += 1
                else:
                    self.objects.append((entry, int(seg["id"])))

    def __len__(self) -> int:
        return len(self.objects)

    def image_keys(self) -> list[str]:
        return sorted({f"{self.name}/{self.entries[e][0]}" for e, _ in self.objects})

    def read_image(self, key: str) -> np.ndarray:
        return read_image(self.image_dir / key.split("/", 1)[1], exif_orientation=False)

    def load_object(self, index: int, rng: np.random.Generator, with_image: bool = True) -> Optional[RawObject]:
        entry, segment_id = self.objects[index]
        image_file, png, crowd = self.entries[entry]
        with Image.open(self.mask_dir / png) as img:
            rgb = np.asarray(img.convert("RGB")).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        image, ok = _image_matching(self.image_dir / image_file, ids.shape, with_image)
        if not ok:
            return None
        ignore = np.isin(ids, crowd) if crowd else None
        return RawObject(image, ids == segment_id, ignore, f"{self.name}/{image_file}")


class SbdInstances(ObjectSource):
    """SBD train (see the module docstring)."""

    name = "sbd"

    def __init__(self, root: str | Path, split: str = "train.txt", min_area: int = 100) -> None:
        super().__init__()
        self.root, self.min_area = Path(root), min_area
        list_path = _resolve(self.root, split)
        if not list_path.is_file():
            raise FileNotFoundError(f"SBD split list not found: {list_path}")
        _require_dir(self.root / "img", "SBD image")
        _require_dir(self.root / "inst", "SBD instance")
        self.names = [n.strip() for n in list_path.read_text().split() if n.strip()]

    def __len__(self) -> int:
        return len(self.names)

    def image_keys(self) -> list[str]:
        return [f"{self.name}/{n}.jpg" for n in self.names]

    def read_image(self, key: str) -> np.ndarray:
        return read_image(self.root / "img" / key.split("/", 1)[1], exif_orientation=False)

    def load_object(self, index: int, rng: np.random.Generator, with_image: bool = True) -> Optional[RawObject]:
        from scipy.io import loadmat

        name = self.names[index]
        try:
            inst = loadmat(str(self.root / "inst" / f"{name}.mat"))["GTinst"]["Segmentation"][0][0]
        except (OSError, KeyError, IndexError, ValueError):
            return None
        inst = np.asarray(inst).astype(np.int32)
        ids, counts = np.unique(inst[(inst > 0) & (inst != 255)], return_counts=True)
        ids = ids[counts >= self.min_area]
        if len(ids) == 0:
            return None
        chosen = int(ids[rng.integers(0, len(ids))])
        image, ok = _image_matching(self.root / "img" / f"{name}.jpg", inst.shape, with_image)
        if not ok:
            return None
        ignore = inst == 255
        return RawObject(image, inst == chosen, ignore if ignore.any() else None, f"{self.name}/{name}.jpg")


class ImageMaskFolder(ObjectSource):
    """Images and masks matched by stem (see the module docstring)."""

    def __init__(self, root: str | Path, images: str = "images", masks: str = "masks", instances: bool = False,
                 name: str = "folder", min_area: int = 100) -> None:
        super().__init__()
        self.root, self.name, self.instances, self.min_area = Path(root), name, instances, min_area
        self.image_dir = _require_dir(_resolve(self.root, images), f"{name} image")
        self.mask_dir = _require_dir(_resolve(self.root, masks), f"{name} mask")
        masks_by_stem: dict[str, Path] = {}
        for p in sorted(self.mask_dir.iterdir()):
            if p.suffix.lower() in IMAGE_EXTENSIONS and (self.mask_dir != self.image_dir or p.suffix.lower() == ".png"):
                masks_by_stem.setdefault(p.stem, p)
        self.pairs: list[tuple[Path, Path]] = []
        for p in sorted(self.image_dir.iterdir()):
            if p.suffix.lower() not in IMAGE_EXTENSIONS or (self.mask_dir == self.image_dir and p.suffix.lower() == ".png"):
                continue
            mask = masks_by_stem.get(p.stem)
            if mask is None or mask == p:
                self.skipped["image without mask"] += 1
            else:
                self.pairs.append((p, mask))

    def __len__(self) -> int:
        return len(self.pairs)

    def image_keys(self) -> list[str]:
        return [f"{self.name}/{p.relative_to(self.root).as_posix()}" for p, _ in self.pairs]

    def read_image(self, key: str) -> np.ndarray:
        return read_image(self.root / key.split("/", 1)[1], exif_orientation=False)

    def load_object(self, index: int, rng: np.random.Generator, with_image: bool = True) -> Optional[RawObject]:
        image_path, mask_path = self.pairs[index]
        try:
            values = _read_index_png(mask_path)
        except OSError:
            return None
        image, ok = _image_matching(image_path, values.shape, with_image)
        if not ok:
            return None
        key = f"{self.name}/{image_path.relative_to(self.root).as_posix()}"
        if not self.instances:
            with Image.open(mask_path) as img:
                palette = img.mode == "P"
            return RawObject(image, _binary(values, palette), None, key)
        ids, counts = np.unique(values[(values != 0) & (values != 255)], return_counts=True)
        ids = ids[counts >= self.min_area]
        if len(ids) == 0:
            return None
        ignore = values == 255
        return RawObject(image, values == ids[rng.integers(0, len(ids))], ignore if ignore.any() else None, key)


HQSEG_SUBSETS = {
    "DIS5K-TR": ("DIS5K/DIS-TR/im", "DIS5K/DIS-TR/gt"),
    "ThinObject5K-TR": ("thin_object_detection/ThinObject5K/images_train", "thin_object_detection/ThinObject5K/masks_train"),
    "FSS": ("cascade_psp/fss_all", "cascade_psp/fss_all"),
    "DUTS-TR": ("cascade_psp/DUTS-TR", "cascade_psp/DUTS-TR"),
    "DUTS-TE": ("cascade_psp/DUTS-TE", "cascade_psp/DUTS-TE"),
    "ECSSD": ("cascade_psp/ecssd", "cascade_psp/ecssd"),
    "MSRA10K": ("cascade_psp/MSRA_10K", "cascade_psp/MSRA_10K"),
}


class HQSegTrain(ObjectSource):
    """HQSeg-44K train: the union of the HQ-SAM training folders found under ``root``."""

    name = "hqseg"

    def __init__(self, root: str | Path, subsets: Optional[list[str]] = None, min_area: int = 100) -> None:
        super().__init__()
        self.root = Path(root)
        wanted = subsets or list(HQSEG_SUBSETS)
        unknown = [s for s in wanted if s not in HQSEG_SUBSETS]
        if unknown:
            raise ValueError(f"unknown HQSeg-44K subsets {unknown}; known: {sorted(HQSEG_SUBSETS)}")
        self.parts: list[ImageMaskFolder] = []
        self.missing: list[str] = []
        for subset in wanted:
            images, masks = HQSEG_SUBSETS[subset]
            if not (self.root / images).is_dir():
                self.missing.append(subset)
                continue
            part = ImageMaskFolder(self.root, images, masks, name="hqseg", min_area=min_area)
            self.parts.append(part)
            self.skipped.update(part.skipped)
        if not self.parts:
            raise FileNotFoundError(f"no HQSeg-44K training folder under {self.root} (looked for {sorted(HQSEG_SUBSETS)})")
        self._offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def image_keys(self) -> list[str]:
        return [k for part in self.parts for k in part.image_keys()]

    def read_image(self, key: str) -> np.ndarray:
        return read_image(self.root / key.split("/", 1)[1], exif_orientation=False)

    def load_object(self, index: int, rng: np.random.Generator, with_image: bool = True) -> Optional[RawObject]:
        pos = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self.parts[pos].load_object(index - int(self._offsets[pos]), rng, with_image)


SOURCES: dict[str, type[ObjectSource]] = {
    "coco": CocoInstances,
    "lvis": CocoInstances,
    "coco-panoptic": CocoPanoptic,
    "sbd": SbdInstances,
    "hqseg": HQSegTrain,
    "folder": ImageMaskFolder,
    "synthetic": SyntheticSource,
    "synthetic-rendered": RenderedSynthetic,
}


def build_source(spec: dict[str, Any], min_area: int = 100) -> ObjectSource:
    """A source from a config entry ``{"type": ..., "root": ..., other options}``.

    Example: ``build_source({"type": "lvis", "root": "/data/coco"})``.
    """
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in SOURCES:
        raise ValueError(f"dataset type {kind!r} is not one of {sorted(SOURCES)}")
    if kind == "lvis":
        spec.setdefault("annotations", "lvis_v1_train.json")
        spec.setdefault("name", "lvis")
    if kind not in ("synthetic", "synthetic-rendered"):
        if "root" not in spec:
            raise ValueError(f"dataset {kind!r} needs a 'root' folder")
        spec.setdefault("min_area", min_area)
    try:
        return SOURCES[kind](**spec)
    except TypeError as exc:
        raise ValueError(f"bad options for dataset {kind!r}: {exc}") from exc
