"""The single-object benchmark sets of the RITM family: GrabCut, Berkeley, DAVIS, COCO-MVal.

Mask decodings (SPEC §7.4, ``../shared/data/README.md``), identical to RITM's loaders:

- GrabCut: 8-bit gray, 255 object, 0 background, 128 the ignore band (values > 128 are object).
- Berkeley: the same rule (RITM's Berkeley loader is GrabCut's); one file has anti-aliased
  values, which the > 128 threshold turns into object or background.
- DAVIS and COCO-MVal: any nonzero palette index (or nonzero colour) is the object.
"""
from __future__ import annotations

import numpy as np

from .base import DatasetError, EvalDataset, EvalObject, gray_channel, match_by_stem, max_channel, read_mask_array

__all__ = ["GrabCutDataset", "BerkeleyDataset", "DavisDataset", "CocoMValDataset", "StemMatchedDataset"]


class StemMatchedDataset(EvalDataset):
    """One object per image, images and masks in two folders matched by file stem."""

    images_dir_name = "images"
    masks_dir_name = "masks"

    def _list_objects(self) -> list[EvalObject]:
        pairs = match_by_stem(self.root / self.images_dir_name, self.root / self.masks_dir_name)
        return [EvalObject(stem, stem, image, mask) for stem, image, mask in pairs]


class GrabCutDataset(StemMatchedDataset):
    """GrabCut (50 images): ``data_GT/`` images, ``boundary_GT/*.bmp`` masks with a 128 ignore band."""

    name = "GrabCut"
    images_dir_name = "data_GT"
    masks_dir_name = "boundary_GT"
    ignore_value: int | None = 128

    def decode_gt(self, obj: EvalObject) -> np.ndarray:
        array = read_mask_array(obj.mask_path)
        if array.dtype != np.uint8:
            raise DatasetError(f"mask {obj.mask_path} is not an 8-bit image (dtype {array.dtype})")
        raw = gray_channel(array, obj.mask_path)
        gt = np.zeros(raw.shape, dtype=np.int8)
        gt[raw > 128] = 1
        if self.ignore_value is not None:
            gt[raw == self.ignore_value] = -1
        return gt


class BerkeleyDataset(GrabCutDataset):
    """Berkeley (100 objects on 96 photos): ``images/*.jpg``, ``masks/*.png``, object = value > 128."""

    name = "Berkeley"
    images_dir_name = "images"
    masks_dir_name = "masks"


class DavisDataset(StemMatchedDataset):
    """DAVIS (345 frames, 854x480): ``img/*.jpg``, ``gt/*.png`` palette, any nonzero index = object."""

    name = "DAVIS"
    images_dir_name = "img"
    masks_dir_name = "gt"

    def decode_gt(self, obj: EvalObject) -> np.ndarray:
        raw = max_channel(read_mask_array(obj.mask_path))
        return (raw > 0).astype(np.int8)


class CocoMValDataset(DavisDataset):
    """COCO-MVal (800 objects): ``img/``, ``gt/``, decoded like DAVIS (RITM loads it with its DAVIS loader)."""

    name = "COCO_MVal"
