"""Multi-instance benchmark sets: SBD (``.mat`` instance maps) and PascalVOC (palette PNGs).

- SBD val: ``img/{name}.jpg``, ``inst/{name}.mat`` (``GTinst.Segmentation``, 0 background,
  1..N instances), names from ``val.txt``; every nonzero instance id is one object, in id order
  (RITM's ``SBDEvaluationDataset``; 6,671 objects in the full val split).
- PascalVOC val: ``JPEGImages/{name}.jpg``, ``SegmentationObject/{name}.png`` palette indices
  (0 background, 1..N instances, 255 the border band, ignored; RITM reads it as gray 220),
  names from ``ImageSets/Segmentation/val.txt``.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .base import DatasetError, EvalDataset, EvalObject, read_mask_array, require_dir

__all__ = ["SbdDataset", "PascalVocDataset", "read_split_file", "load_sbd_instances"]


def read_split_file(path: Path) -> list[str]:
    """The names listed in a split file, one per line, blank lines skipped."""
    if not path.is_file():
        raise DatasetError(f"split file not found: {path}")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise DatasetError(f"split file {path} lists no images")
    return names


@functools.lru_cache(maxsize=4)
def _load_sbd_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    from scipy.io import loadmat

    try:
        content = loadmat(path)
        instances = content["GTinst"]["Segmentation"][0, 0]
    except (KeyError, ValueError, IndexError, TypeError, OSError) as exc:
        raise DatasetError(f"cannot read GTinst.Segmentation from SBD file {path}: {exc}") from exc
    instances = np.asarray(instances)
    if instances.ndim != 2:
        raise DatasetError(f"GTinst.Segmentation in {path} has shape {instances.shape}, expected HxW")
    instances = instances.astype(np.int32)
    instances.setflags(write=False)
    return instances


def load_sbd_instances(path: Path) -> np.ndarray:
    """The HxW int32 instance map of an SBD ``inst/*.mat`` file (0 background, k the k-th instance)."""
    if not path.is_file():
        raise DatasetError(f"SBD instance file not found: {path}")
    stat = path.stat()
    return _load_sbd_cached(str(path), stat.st_mtime_ns, stat.st_size)


def _instance_ids(instance_map: np.ndarray, skip: tuple[int, ...]) -> list[int]:
    ids = np.unique(instance_map)
    return [int(i) for i in ids if int(i) not in skip]


class SbdDataset(EvalDataset):
    """SBD: one object per instance of every image in ``{split}.txt``."""

    name = "SBD"

    def __init__(self, root: str | Path, split: str = "val") -> None:
        super().__init__(root)
        self.split = split

    def _list_objects(self) -> list[EvalObject]:
        images_dir = require_dir(self.root / "img", "SBD image")
        inst_dir = require_dir(self.root / "inst", "SBD instance")
        objects: list[EvalObject] = []
        for name in read_split_file(self.root / f"{self.split}.txt"):
            image_path, mat_path = images_dir / f"{name}.jpg", inst_dir / f"{name}.mat"
            if not image_path.is_file():
                raise DatasetError(f"image {image_path} listed in {self.split}.txt is missing")
            for instance in _instance_ids(load_sbd_instances(mat_path), skip=(0,)):
                objects.append(EvalObject(f"{name}#{instance}", name, image_path, mat_path, instance))
        return objects

    def decode_gt(self, obj: EvalObject) -> np.ndarray:
        return (load_sbd_instances(obj.mask_path) == obj.instance).astype(np.int8)


class PascalVocDataset(EvalDataset):
    """PascalVOC: one object per instance of ``SegmentationObject`` for the images of the split."""

    name = "PascalVOC"
    border_index = 255

    def __init__(self, root: str | Path, split: str = "val") -> None:
        super().__init__(root)
        self.split = split

    def _instance_map(self, path: Path) -> np.ndarray:
        array = read_mask_array(path)
        if array.ndim != 2:
            raise DatasetError(f"PascalVOC mask {path} is not a palette PNG (shape {array.shape}); "
                               "SegmentationObject files store instance indices in a palette")
        return array

    def _list_objects(self) -> list[EvalObject]:
        images_dir = require_dir(self.root / "JPEGImages", "PascalVOC image")
        masks_dir = require_dir(self.root / "SegmentationObject", "PascalVOC SegmentationObject")
        split_file = self.root / "ImageSets" / "Segmentation" / f"{self.split}.txt"
        objects: list[EvalObject] = []
        for name in read_split_file(split_file):
            image_path, mask_path = images_dir / f"{name}.jpg", masks_dir / f"{name}.png"
            if not image_path.is_file():
                raise DatasetError(f"image {image_path} listed in {split_file} is missing")
            for instance in _instance_ids(self._instance_map(mask_path), skip=(0, self.border_index)):
                objects.append(EvalObject(f"{name}#{instance}", name, image_path, mask_path, instance))
        return objects

    def decode_gt(self, obj: EvalObject) -> np.ndarray:
        instance_map = self._instance_map(obj.mask_path)
        gt = (instance_map == obj.instance).astype(np.int8)
        gt[instance_map == self.border_index] = -1
        return gt
