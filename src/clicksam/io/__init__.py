"""Mask input/output: COCO RLE, row-major runs, PNG masks and label maps, polygons with holes.

Everything here works on HxW bool masks (``True`` = object) and writes files atomically.
"""
from __future__ import annotations

from clicksam.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from clicksam.io.masks import (
    label_map_png_bytes,
    label_map_to_masks,
    masks_to_label_map,
    read_label_map,
    read_mask,
    write_label_map,
    write_mask,
)
from clicksam.io.polygons import Polygon, mask_to_polygons, polygons_to_mask
from clicksam.io.rle import (
    check_mask,
    mask_to_rle,
    mask_to_runs,
    rle_area,
    rle_bbox,
    rle_to_mask,
    runs_to_mask,
)

__all__ = [
    "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
    "label_map_png_bytes", "label_map_to_masks", "masks_to_label_map", "read_label_map", "read_mask",
    "write_label_map", "write_mask",
    "Polygon", "mask_to_polygons", "polygons_to_mask",
    "check_mask", "mask_to_rle", "mask_to_runs", "rle_area", "rle_bbox", "rle_to_mask", "runs_to_mask",
]
