"""Turning an annotation made on a photo's stored pixels into one on the photo as viewers show it.

Version-1 annotation files were made on the stored pixels of a photo; :func:`clicksam.images.read_image`
now applies the EXIF orientation, as every viewer does. The migration to version 2 therefore turns
each annotation of a photo with an orientation tag other than 1 the same way: masks (objects, strokes'
changed pixels, resets), clicks, boxes and stroke paths, and the image size (orientations 5-8 swap
width and height). Masks are turned by Pillow's own transposition (the one ``exif_transpose`` uses),
so they land on the same pixels as the image.

Coordinates: clicks and box corners name a pixel (its centre is ``+0.5``, as SAM reads them); stroke
points are continuous (pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np

from clicksam.server.steps import Reset, Step, Stroke

__all__ = ["orient_annotation", "orient_point"]


def orient_point(x: float, y: float, width: int, height: int, orientation: int) -> tuple[float, float]:
    """A continuous point of a ``width`` × ``height`` stored image, on the image shown with EXIF
    ``orientation`` (1-8, as :func:`PIL.ImageOps.exif_transpose` turns it)."""
    table: dict[int, Callable[[float, float], tuple[float, float]]] = {
        1: lambda u, v: (u, v),
        2: lambda u, v: (width - u, v),  # FLIP_LEFT_RIGHT
        3: lambda u, v: (width - u, height - v),  # ROTATE_180
        4: lambda u, v: (u, height - v),  # FLIP_TOP_BOTTOM
        5: lambda u, v: (v, u),  # TRANSPOSE
        6: lambda u, v: (height - v, u),  # ROTATE_270 (a quarter turn clockwise)
        7: lambda u, v: (height - v, width - u),  # TRANSVERSE
        8: lambda u, v: (v, width - u),  # ROTATE_90 (a quarter turn counter-clockwise)
    }
    if orientation not in table:
        raise ValueError(f"EXIF orientation must be 1-8, got {orientation!r}")
    return table[orientation](x, y)


def _mask(rle: Optional[dict[str, Any]], orientation: int) -> Optional[dict[str, Any]]:
    if rle is None:
        return None
    from PIL import Image

    from clicksam.io.rle import mask_to_rle, rle_to_mask

    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}[orientation]
    mask = Image.fromarray(rle_to_mask(rle).astype(np.uint8)).transpose(method)
    return mask_to_rle(np.asarray(mask, dtype=bool))


def _step(step: Step, width: int, height: int, orientation: int) -> Step:
    def pixel(x: float, y: float) -> tuple[float, float]:
        u, v = orient_point(x + 0.5, y + 0.5, width, height, orientation)
        return u - 0.5, v - 0.5

    if isinstance(step, Stroke):
        points = tuple(orient_point(x, y, width, height, orientation) for x, y in step.points)
        return dataclasses.replace(step, points=points, changed=_mask(step.changed, orientation))
    if isinstance(step, Reset):
        return dataclasses.replace(step, mask=_mask(step.mask, orientation))
    if step.kind == "click":
        x, y = pixel(step.x, step.y)
        return dataclasses.replace(step, x=x, y=y, state=None)
    (ax, ay), (bx, by) = pixel(*step.box[:2]), pixel(*step.box[2:])
    return dataclasses.replace(step, box=(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)), state=None)


def _record(record: Any, width: int, height: int, orientation: int) -> Any:
    return dataclasses.replace(
        record, actions=[_step(s, width, height, orientation) for s in record.actions],
        redo=[_step(s, width, height, orientation) for s in record.redo], mask=_mask(record.mask, orientation))


def orient_annotation(annotation: Any, orientation: int) -> Any:
    """An :class:`~clicksam.server.store.ImageAnnotation` made on the stored pixels, on the image
    turned by EXIF ``orientation`` (a new annotation; orientation 1 gives ``annotation`` itself)."""
    if orientation == 1:
        return annotation
    width, height = annotation.width, annotation.height
    turned = dataclasses.replace(
        annotation, objects=[_record(o, width, height, orientation) for o in annotation.objects],
        deleted=[dataclasses.replace(d, record=_record(d.record, width, height, orientation))
                 for d in annotation.deleted])
    if orientation >= 5:
        turned.width, turned.height = height, width
    return turned

