"""HQSeg-44K validation subsets and a generic images/masks folder loader.

HQSeg-44K val (HQ-SAM's evaluation suite, 1,537 images, one object each): DIS-VD (``im``/``gt``),
ThinObject5K test (``images_test``/``masks_test``), COIFT and HRSOD (``images``/``masks``); masks
are gray and the object is value > 128 (HQ-SAM's ``gt > 128``). A subset folder is looked up as
``ROOT/NAME``, ``ROOT/DIS5K/NAME`` or ``ROOT/thin_object_detection/NAME`` (HQ-SAM's layout).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DatasetError, EvalDataset, EvalObject, match_by_stem, max_channel, read_mask_array

__all__ = ["ForegroundRule", "FolderDataset", "HQSegSubset", "HQSeg44KDataset", "HQSEG_SUBSETS"]


class ForegroundRule:
    """How mask values become object / background / ignore.

    ``spec`` is one of ``nonzero`` (any nonzero value or palette index), ``gt:T`` (value > T),
    ``eq:V`` (value == V); colour masks are reduced by the maximum over channels first.
    ``ignore`` is an optional value marking pixels to ignore (e.g. 128 for GrabCut-style bands).
    """

    def __init__(self, spec: str = "nonzero", ignore: int | None = None) -> None:
        kind, _, value = spec.partition(":")
        if kind not in ("nonzero", "gt", "eq") or (kind == "nonzero") == bool(value):
            raise ValueError(f"foreground rule {spec!r} is not one of 'nonzero', 'gt:T', 'eq:V'")
        try:
            self.value = int(value) if value else 0
        except ValueError as exc:
            raise ValueError(f"foreground rule {spec!r}: {value!r} is not an integer") from exc
        self.kind = kind
        self.ignore = ignore
        self.spec = spec

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """HxW(xC) raw mask values -> HxW int8 (1 object, 0 background, -1 ignore)."""
        values = max_channel(raw)
        if self.kind == "nonzero":
            obj = values != 0
        elif self.kind == "gt":
            obj = values > self.value
        else:
            obj = values == self.value
        gt = obj.astype(np.int8)
        if self.ignore is not None:
            gt[values == self.ignore] = -1
        return gt

    def __repr__(self) -> str:
        return f"ForegroundRule({self.spec!r}, ignore={self.ignore})"


class FolderDataset(EvalDataset):
    """One object per image: ``images_dir`` and ``masks_dir`` matched by file stem.

    Args:
        images_dir: folder of images.
        masks_dir: folder of masks (same stems).
        rule: how mask values decode (default: any nonzero value is the object).
        name: the dataset name used in reports.
    """

    def __init__(self, images_dir: str | Path, masks_dir: str | Path,
                 rule: ForegroundRule | None = None, name: str = "folder") -> None:
        super().__init__(Path(images_dir).parent)
        self.images_dir = Path(images_dir)
        self.masks_dir = Path(masks_dir)
        self.rule = rule or ForegroundRule()
        self.name = name

    def _list_objects(self) -> list[EvalObject]:
        pairs = match_by_stem(self.images_dir, self.masks_dir)
        return [EvalObject(stem, stem, image, mask) for stem, image, mask in pairs]

    def decode_gt(self, obj: EvalObject) -> np.ndarray:
        return self.rule.apply(read_mask_array(obj.mask_path))


# subset name -> (images folder, masks folder)
HQSEG_SUBSETS: dict[str, tuple[str, str]] = {
    "DIS-VD": ("im", "gt"),
    "ThinObject5K": ("images_test", "masks_test"),
    "COIFT": ("images", "masks"),
    "HRSOD": ("images", "masks"),
}
_HQSEG_PARENTS = ("", "DIS5K", "thin_object_detection")
# masks folders preferred when present: HQ-SAM's evaluation reads HRSOD's 0/255 masks from
# thin_object_detection/HRSOD/masks_max255 (its data/ layout); plain masks/ is the fallback
_HQSEG_PREFERRED_MASKS: dict[str, str] = {"HRSOD": "masks_max255"}


def _find_subset_dir(root: Path, subset: str) -> Path:
    images_name = HQSEG_SUBSETS[subset][0]
    if root.name == subset and (root / images_name).is_dir():
        return root
    for parent in _HQSEG_PARENTS:
        candidate = root / parent / subset if parent else root / subset
        if (candidate / images_name).is_dir():
            return candidate
    tried = ", ".join(str(root / p / subset) if p else str(root / subset) for p in _HQSEG_PARENTS)
    raise DatasetError(f"HQSeg-44K subset {subset} not found (tried {tried}, each with {images_name}/)")


class HQSegSubset(FolderDataset):
    """One HQSeg-44K validation subset (``DIS-VD``, ``ThinObject5K``, ``COIFT`` or ``HRSOD``)."""

    def __init__(self, root: str | Path, subset: str) -> None:
        if subset not in HQSEG_SUBSETS:
            raise ValueError(f"unknown HQSeg-44K subset {subset!r}; choose from {sorted(HQSEG_SUBSETS)}")
        folder = _find_subset_dir(Path(root), subset)
        images, masks = HQSEG_SUBSETS[subset]
        preferred = _HQSEG_PREFERRED_MASKS.get(subset)
        if preferred and (folder / preferred).is_dir():
            masks = preferred
        super().__init__(folder / images, folder / masks, ForegroundRule("gt:128"), name=subset)
        self.root = folder


class HQSeg44KDataset(EvalDataset):
    """The four HQSeg-44K validation subsets together; object ids are ``SUBSET/stem``."""

    name = "HQSeg44K"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.subsets = {name: HQSegSubset(root, name) for name in HQSEG_SUBSETS}

    def _list_objects(self) -> list[EvalObject]:
        objects = []
        for subset_name, subset in self.subsets.items():
            for obj in subset.objects:
                objects.append(EvalObject(f"{subset_name}/{obj.object_id}", f"{subset_name}/{obj.image_id}",
                                          obj.image_path, obj.mask_path))
        return objects

    def decode_gt(self, obj: EvalObject) -> np.ndarray:
        subset_name = obj.object_id.split("/", 1)[0]
        if subset_name not in self.subsets:
            raise DatasetError(f"object {obj.object_id!r} does not belong to an HQSeg-44K subset")
        return self.subsets[subset_name].decode_gt(obj)
