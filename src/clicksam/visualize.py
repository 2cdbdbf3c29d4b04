"""Pictures people look at: mask overlays with click markers, and galleries of them."""
from __future__ import annotations

from typing import Sequence

import numpy as np

OVERLAY_COLOR = (30, 144, 255)


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    clicks: Sequence = (),
    box: Sequence[float] | None = None,
    alpha: float = 0.5,
    color: tuple[int, int, int] = OVERLAY_COLOR,
) -> np.ndarray:
    """Blend an H×W bool mask onto an H×W×3 uint8 RGB image, outline it, and mark the clicks
    (objects with ``x``, ``y``, ``positive``: green positive, red negative) and an XYXY box."""
    import cv2

    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the image's {image.shape[:2]}")
    out = image.astype(np.float32).copy()
    m = mask.astype(bool)
    out[m] = out[m] * (1 - alpha) + np.array(color, np.float32) * alpha
    out = out.round().astype(np.uint8)
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (255, 255, 255), thickness=max(1, min(image.shape[:2]) // 300))
    radius = max(3, min(image.shape[:2]) // 80)
    for c in clicks:
        fill = (40, 200, 40) if c.positive else (220, 40, 40)
        centre = (int(round(c.x)), int(round(c.y)))
        cv2.circle(out, centre, radius + 1, (255, 255, 255), -1, lineType=cv2.LINE_AA)
        cv2.circle(out, centre, radius, fill, -1, lineType=cv2.LINE_AA)
    if box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 215, 0), 2)
    return out


def gallery(tiles: Sequence[np.ndarray], titles: Sequence[str], height: int = 320, columns: int = 2) -> np.ndarray:
    """Lay H×W×3 images out in a grid (each scaled to ``height``), with a title above each."""
    import cv2

    cells = []
    for tile, title in zip(tiles, titles):
        scale = height / tile.shape[0]
        resized = cv2.resize(tile, (max(1, int(round(tile.shape[1] * scale))), height), interpolation=cv2.INTER_AREA)
        band = np.full((28, resized.shape[1], 3), 255, np.uint8)
        cv2.putText(band, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (20, 20, 20), 1, cv2.LINE_AA)
        cells.append(np.vstack([band, resized]))
    width = max(c.shape[1] for c in cells)
    cells = [np.pad(c, ((0, 0), (0, width - c.shape[1]), (0, 0)), constant_values=255) for c in cells]
    rows = []
    for i in range(0, len(cells), columns):
        row = cells[i : i + columns]
        row += [np.full_like(cells[0], 255)] * (columns - len(row))
        rows.append(np.hstack(row))
    return np.vstack(rows)


def save_png(path, image: np.ndarray) -> None:
    """Write an RGB (or single-channel) uint8 image as PNG, atomically."""
    from PIL import Image

    from clicksam.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
