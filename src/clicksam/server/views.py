"""JSON views of annotations for the page (masks as row-major runs, which a browser decodes fast)."""
from __future__ import annotations

from typing import Any, Optional

from clicksam.io.rle import mask_to_runs, rle_area, rle_bbox, rle_to_mask
from clicksam.server.store import ImageAnnotation, ObjectRecord

__all__ = ["object_view", "image_state"]


def object_view(record: ObjectRecord, class_name: str, latency: Optional[float] = None) -> dict[str, Any]:
    """An object for the page: class, method, flags, prompts, mask as runs, area, bbox, latency."""
    view: dict[str, Any] = {
        "id": record.id, "class": record.class_id, "label": class_name, "method": record.method,
        "hidden": record.hidden, "locked": record.locked, "solo": record.solo,
        "clicks": record.clicks, "box": record.box, "strokes": record.strokes, "score": record.score,
        "can_undo": bool(record.actions), "can_redo": bool(record.redo), "mask": None, "area": 0, "bbox": None}
    if record.mask is not None:
        view["mask"] = mask_to_runs(rle_to_mask(record.mask))
        view["area"] = rle_area(record.mask)
        view["bbox"] = rle_bbox(record.mask)
    if latency is not None:
        view["latency_ms"] = round(latency * 1000.0, 1)
    return view


def image_state(annotation: ImageAnnotation) -> dict[str, Any]:
    """What the page's Undo/Redo buttons and review badge need after any change."""
    return {"review": annotation.review, "can_undo": bool(annotation.history),
            "can_redo": bool(annotation.future), "deleted_objects": len(annotation.deleted)}
