"""Exports of saved annotations: COCO JSON with RLE masks, PNG label maps, polygons with holes.

Every format reads the annotation store only (no model needed). Objects without a mask (no
prompt or stroke yet) are left out; deleted objects too. Categories are the folder's class list,
in its order, with the class ids as category ids (every class, used or not).

A corrupt annotation file (unreadable JSON, invalid content, a damaged mask) is skipped with a
warning, logged and listed in the export (``info.warnings`` in COCO, ``warnings`` in the polygons
file and in ``labels.json``; the web export also counts them in the ``X-Clicksam-Skipped`` header);
the other images are exported.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from clicksam.io.atomic import atomic_write_json
from clicksam.io.masks import label_map_png_bytes, masks_to_label_map, write_label_map
from clicksam.io.polygons import mask_to_polygons
from clicksam.io.rle import rle_area, rle_bbox, rle_to_mask
from clicksam.server.store import AnnotationStore, ImageAnnotation, check_masks

__all__ = ["EXPORT_FORMATS", "SKIPPED_HEADER", "coco_dataset", "polygons_dataset", "label_maps", "png_zip",
           "export_to"]

EXPORT_FORMATS = ("coco", "png", "polygons")
SKIPPED_HEADER = "X-Clicksam-Skipped"

log = logging.getLogger(__name__)


def _annotations(store: AnnotationStore, images: list[str] | None, skipped: list[str]) -> Iterator[ImageAnnotation]:
    """The readable annotations of ``images`` (default every annotated image); a corrupt file is
    logged, named in ``skipped`` and left out."""
    for name in images if images is not None else store.images():
        try:
            annotation = store.load(name)
            if annotation is not None:
                check_masks(annotation)
        except ValueError as exc:
            message = f"skipped {name!r}: {exc}"
            log.warning("export %s", message)
            skipped.append(message)
            continue
        if annotation is not None:
            yield annotation


def _categories(store: AnnotationStore) -> dict[int, str]:
    return {c.id: c.name for c in store.classes.classes}


def coco_dataset(store: AnnotationStore, images: list[str] | None = None,
                 skipped: Optional[list[str]] = None) -> dict[str, Any]:
    """A COCO instance-segmentation dict; masks as compressed RLE (holes kept).

    Args:
        store: the annotation store.
        images: image names to export in this order (default: every annotated image).
        skipped: receives a warning per corrupt annotation file left out (also in ``info.warnings``).
    """
    skipped = [] if skipped is None else skipped
    annotations = list(_annotations(store, images, skipped))
    categories = _categories(store)
    dataset: dict[str, Any] = {
        "info": {"description": "exported by clicksam", "date_created": _dt.datetime.now(_dt.timezone.utc).isoformat()},
        "images": [], "annotations": [],
        "categories": [{"id": i, "name": name, "supercategory": ""} for i, name in categories.items()],
    }
    if skipped:
        dataset["info"]["warnings"] = list(skipped)
    next_id = 1
    for image_id, annotation in enumerate(annotations, start=1):
        dataset["images"].append({"id": image_id, "file_name": annotation.image,
                                  "width": annotation.width, "height": annotation.height})
        for record in annotation.objects:
            if record.mask is None:
                continue
            dataset["annotations"].append({
                "id": next_id, "image_id": image_id, "category_id": record.class_id,
                "segmentation": record.mask, "area": rle_area(record.mask), "bbox": rle_bbox(record.mask),
                "iscrowd": 0, "clicksam": {"object_id": record.id, "method": record.method, "clicks": record.clicks,
                                            "box": record.box, "strokes": record.strokes, "score": record.score},
            })
            next_id += 1
    return dataset


def polygons_dataset(store: AnnotationStore, images: list[str] | None = None,
                     tolerance: float = 0.0, skipped: Optional[list[str]] = None) -> dict[str, Any]:
    """Every object as polygons with holes: ``{"images": [{"file_name", "width", "height",
    "objects": [{"id", "class", "label", "polygons": [{"exterior": [[x, y]...], "holes": [...]}]}]}]}``,
    plus ``warnings`` (the corrupt files left out, also appended to ``skipped``)."""
    skipped = [] if skipped is None else skipped
    categories = _categories(store)
    result: dict[str, Any] = {"format": "clicksam-polygons", "version": 1,
                              "coordinates": "pixel centres (x, y)", "images": []}
    for annotation in _annotations(store, images, skipped):
        objects = []
        for record in annotation.objects:
            if record.mask is None:
                continue
            polygons = mask_to_polygons(rle_to_mask(record.mask), tolerance=tolerance)
            objects.append({"id": record.id, "class": record.class_id, "label": categories[record.class_id],
                            "polygons": [p.to_dict() for p in polygons]})
        result["images"].append({"file_name": annotation.image, "width": annotation.width,
                                 "height": annotation.height, "objects": objects})
    if skipped:
        result["warnings"] = list(skipped)
    return result


def label_maps(store: AnnotationStore, images: list[str] | None = None, skipped: Optional[list[str]] = None
               ) -> tuple[dict[str, int], Iterator[tuple[str, np.ndarray, np.ndarray, dict[int, str]]]]:
    """Categories (``{class name: class id}``) and, per image, ``(name, instance map, class map,
    {instance value: label})``; corrupt files are left out and named in ``skipped``.

    The instance map holds 1..N in object order (later objects drawn over earlier ones); the
    class map holds the class id of the same pixels.
    """
    annotations = list(_annotations(store, images, [] if skipped is None else skipped))
    names = _categories(store)
    categories = {name: class_id for class_id, name in names.items()}

    def generate() -> Iterator[tuple[str, np.ndarray, np.ndarray, dict[int, str]]]:
        for annotation in annotations:
            records = [r for r in annotation.objects if r.mask is not None]
            masks = [rle_to_mask(r.mask) for r in records]  # type: ignore[arg-type]
            shape = (annotation.height, annotation.width)  # the masks' size: checked when the file was read
            instances = masks_to_label_map(masks, shape=shape)
            classes = masks_to_label_map(masks, [r.class_id for r in records], shape=shape)
            yield annotation.image, instances, classes, {i: names[r.class_id] for i, r in enumerate(records, start=1)}

    return categories, generate()


def _png_name(image: str, kind: str) -> str:
    return f"{kind}/{Path(image).with_suffix('.png').as_posix()}"


def png_zip(store: AnnotationStore, images: list[str] | None = None, skipped: Optional[list[str]] = None) -> bytes:
    """The PNG label maps of :func:`label_maps` in a zip (``instances/``, ``classes/``, ``labels.json``
    with the corrupt files left out under ``warnings``)."""
    skipped = [] if skipped is None else skipped
    categories, maps = label_maps(store, images, skipped)
    index: dict[str, Any] = {"categories": categories, "images": {}, **({"warnings": list(skipped)} if skipped else {})}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, instances, classes, labels in maps:
            archive.writestr(_png_name(name, "instances"), label_map_png_bytes(instances))
            archive.writestr(_png_name(name, "classes"), label_map_png_bytes(classes))
            index["images"][name] = {str(k): v for k, v in labels.items()}
        archive.writestr("labels.json", json.dumps(index, indent=1, ensure_ascii=False))
    return buffer.getvalue()


def export_to(store: AnnotationStore, fmt: str, out: str | os.PathLike[str],
              images: list[str] | None = None, skipped: Optional[list[str]] = None) -> Path:
    """Write an export to disk: a JSON file for ``coco``/``polygons``, a folder for ``png``
    (corrupt annotation files are left out and named in ``skipped``)."""
    target = Path(out)
    skipped = [] if skipped is None else skipped
    if fmt == "coco":
        return atomic_write_json(target, coco_dataset(store, images, skipped), indent=None)
    if fmt == "polygons":
        return atomic_write_json(target, polygons_dataset(store, images, skipped=skipped), indent=None)
    if fmt == "png":
        categories, maps = label_maps(store, images, skipped)
        index: dict[str, Any] = {"categories": categories, "images": {}}
        for name, instances, classes, labels in maps:
            write_label_map(target / _png_name(name, "instances"), instances)
            write_label_map(target / _png_name(name, "classes"), classes)
            index["images"][name] = {str(k): v for k, v in labels.items()}
        if skipped:
            index["warnings"] = list(skipped)
        atomic_write_json(target / "labels.json", index)
        return target
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")

