"""Evaluation dataset loaders and their registry.

``load_dataset(name, data_root)`` accepts either the dataset's own folder or a parent folder that
holds it under its usual name (e.g. ``../shared/data`` for ``GrabCut``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .base import DatasetError, EvalDataset, EvalObject, match_by_stem, read_image_rgb, read_mask_array
from .folder import HQSEG_SUBSETS, FolderDataset, ForegroundRule, HQSeg44KDataset, HQSegSubset
from .multi import PascalVocDataset, SbdDataset
from .ritm import BerkeleyDataset, CocoMValDataset, DavisDataset, GrabCutDataset

__all__ = [
    "DatasetError", "EvalDataset", "EvalObject", "FolderDataset", "ForegroundRule", "GrabCutDataset",
    "BerkeleyDataset", "DavisDataset", "CocoMValDataset", "SbdDataset", "PascalVocDataset",
    "HQSeg44KDataset", "HQSegSubset", "DATASETS", "canonical_dataset_name", "load_dataset",
    "match_by_stem", "read_image_rgb", "read_mask_array",
]

# canonical name -> (folder names to look for under a parent root, factory(root))
DATASETS: dict[str, tuple[tuple[str, ...], Callable[[Path], EvalDataset]]] = {
    "GrabCut": (("GrabCut",), GrabCutDataset),
    "Berkeley": (("Berkeley",), BerkeleyDataset),
    "DAVIS": (("DAVIS", "DAVIS345"), DavisDataset),
    "COCO_MVal": (("COCO_MVal", "COCO-MVal", "coco_mval"), CocoMValDataset),
    "SBD": (("SBD", "SBD/dataset"), SbdDataset),
    "PascalVOC": (("PascalVOC", "VOC2012", "VOCdevkit/VOC2012"), PascalVocDataset),
    "HQSeg44K": (("HQSeg44K", "HQSeg-44K", "sam-hq"), HQSeg44KDataset),
}
for _subset in HQSEG_SUBSETS:
    DATASETS[_subset] = (("HQSeg44K", "HQSeg-44K", "sam-hq"),
                         lambda root, _s=_subset: HQSegSubset(root, _s))

# the folder that identifies each dataset's own root
_MARKERS: dict[str, str] = {
    "GrabCut": "data_GT", "Berkeley": "images", "DAVIS": "img", "COCO_MVal": "img", "SBD": "inst",
    "PascalVOC": "SegmentationObject",
}


def canonical_dataset_name(name: str) -> str:
    """The registry spelling of ``name`` (case, ``-`` and ``_`` are not significant)."""
    def key(text: str) -> str:
        return text.lower().replace("-", "").replace("_", "")

    for canonical in DATASETS:
        if key(canonical) == key(name):
            return canonical
    raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} "
                     "(or use a folder dataset with --images/--masks)")


def _resolve_root(canonical: str, data_root: Path) -> Path:
    marker = _MARKERS.get(canonical)
    if marker is None:  # HQSeg: the subset loaders search their own layouts
        for folder in DATASETS[canonical][0]:
            if (data_root / folder).is_dir():
                return data_root / folder
        return data_root
    if (data_root / marker).is_dir():
        return data_root
    for folder in DATASETS[canonical][0]:
        if (data_root / folder / marker).is_dir():
            return data_root / folder
    looked = ", ".join(str(data_root / f) for f in DATASETS[canonical][0])
    raise DatasetError(f"{canonical} not found: neither {data_root} nor {looked} holds a {marker}/ folder")


def load_dataset(name: str, data_root: str | Path) -> EvalDataset:
    """Build the loader of dataset ``name`` from ``data_root`` (its folder or a parent of it).

    Raises:
        ValueError: unknown name.
        DatasetError: the folder is missing or malformed (the message names it).
    """
    canonical = canonical_dataset_name(name)
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data root folder not found: {root}")
    dataset = DATASETS[canonical][1](_resolve_root(canonical, root))
    dataset.name = canonical
    return dataset
