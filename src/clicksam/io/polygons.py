"""Binary masks <-> polygons with holes.

``mask_to_polygons`` traces the mask with OpenCV's two-level contour retrieval
(``RETR_CCOMP``): every outer boundary becomes a :class:`Polygon` and the boundaries of the
holes inside it become its ``holes``. An island inside a hole is an outer boundary again, so
any mask is represented. Vertices are ``(x, y)`` pixel centres of boundary pixels (OpenCV's
convention); :func:`polygons_to_mask` rasterises them back to the same mask.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from clicksam.io.rle import check_mask

__all__ = ["Polygon", "mask_to_polygons", "polygons_to_mask"]

Ring = list[list[float]]


@dataclass
class Polygon:
    """One connected region: an outer ring and the rings of its holes, each a list of ``[x, y]``."""

    exterior: Ring
    holes: list[Ring] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form ``{"exterior": [[x, y], ...], "holes": [[[x, y], ...], ...]}``."""
        return {"exterior": self.exterior, "holes": self.holes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Polygon":
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on a malformed ring."""
        if not isinstance(data, dict) or "exterior" not in data:
            raise ValueError("a polygon must be a dict with an 'exterior' ring")
        holes = data.get("holes", [])
        if not isinstance(holes, list):
            raise ValueError("a polygon's 'holes' must be a list of rings")
        return cls(_check_ring(data["exterior"], "exterior"), [_check_ring(h, "hole") for h in holes])


def _check_ring(ring: Any, name: str) -> Ring:
    array = np.asarray(ring, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 1:
        raise ValueError(f"a polygon {name} must be a list of [x, y] points, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"a polygon {name} has non-finite coordinates")
    return array.tolist()


def _ring(contour: np.ndarray) -> Ring:
    return contour.reshape(-1, 2).astype(float).tolist()


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0) -> list[Polygon]:
    """Trace an HxW binary mask into polygons with holes.

    Args:
        mask: HxW bool (or 0/1) array.
        tolerance: Douglas-Peucker tolerance in pixels; 0 keeps every corner, so that
            :func:`polygons_to_mask` reproduces the mask exactly.

    Returns:
        One :class:`Polygon` per 8-connected region, largest first. An empty mask gives ``[]``.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    binary = check_mask(mask).astype(np.uint8)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    links = hierarchy.reshape(-1, 4)  # next, previous, first child, parent

    def simplify(contour: np.ndarray) -> np.ndarray:
        if tolerance > 0 and len(contour) > 3:
            return cv2.approxPolyDP(contour, tolerance, True)
        return contour

    polygons: list[tuple[float, Polygon]] = []
    for index, (_, _, first_child, parent) in enumerate(links):
        if parent != -1:
            continue
        holes: list[Ring] = []
        child = first_child
        while child != -1:
            holes.append(_ring(simplify(contours[child])))
            child = links[child][0]
        area = float(cv2.contourArea(contours[index])) + len(contours[index])
        polygons.append((area, Polygon(_ring(simplify(contours[index])), holes)))
    polygons.sort(key=lambda item: -item[0])
    return [polygon for _, polygon in polygons]


def _points(ring: Ring) -> np.ndarray:
    return np.round(np.asarray(ring, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)


def polygons_to_mask(polygons: Sequence[Polygon | dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Rasterise polygons with holes into an HxW bool mask (inverse of :func:`mask_to_polygons`).

    Each polygon fills its exterior (boundary included), clears the inside of its holes but keeps
    the hole rings themselves (they are traced on object pixels), then is OR-ed into the result.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    result = np.zeros((height, width), dtype=np.uint8)
    for item in polygons:
        polygon = item if isinstance(item, Polygon) else Polygon.from_dict(item)
        region = np.zeros((height, width), dtype=np.uint8)
        exterior = _points(polygon.exterior)
        cv2.fillPoly(region, [exterior], 1)
        cv2.polylines(region, [exterior], True, 1)
        for hole in polygon.holes:
            ring = _points(hole)
            cv2.fillPoly(region, [ring], 0)
            cv2.polylines(region, [ring], True, 1)
        result |= region
    return result.astype(bool)
