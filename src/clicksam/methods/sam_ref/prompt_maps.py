"""The prompt map D of SAM-REF: click disks and SAM's logits in the padded 1024 frame."""
from __future__ import annotations

import torch
import torch.nn.functional as F

POSITIVE_LABEL = 1
NEGATIVE_LABEL = 0


def upsample_logits(low_res_logits: torch.Tensor, image_size: int = 1024) -> torch.Tensor:
    """SAM's low-res logits B×1×256×256 → B×1×S×S in the padded frame (S = ``image_size``).

    Bilinear with ``align_corners=False``, the first step of SAM's own ``postprocess_masks``,
    so the 1024-frame logits equal what SAM would produce before cropping.
    """
    if low_res_logits.dim() != 4 or low_res_logits.shape[1] != 1:
        raise ValueError(
            f"low_res_logits must be B×1×h×w, got shape {tuple(low_res_logits.shape)}; "
            "select one mask per prompt before refining"
        )
    if low_res_logits.shape[-2:] == (image_size, image_size):
        return low_res_logits
    return F.interpolate(low_res_logits, size=(image_size, image_size), mode="bilinear",
                         align_corners=False)


def click_disks(
    points: torch.Tensor | None,
    labels: torch.Tensor | None,
    size: tuple[int, int],
    radius: float = 5.0,
    batch_size: int = 1,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Positive and negative click disks, B×2×H×W float (channel 0 positive, 1 negative).

    Args:
        points: B×N×2 click coordinates (x, y) in the pixel frame of the map (the 1024 frame:
            original-image pixels times SAM's resize scale, *without* SAM's +0.5), or None.
        labels: B×N; 1 positive, 0 negative. Other labels (-1 padding, 2/3 box corners) draw
            nothing.
        size: (H, W) of the map.
        radius: disk radius in pixels; pixel (row i, col j) is on when
            ``(j - x)**2 + (i - y)**2 <= radius**2``, i.e. distances between pixel centres.
        batch_size: B when ``points`` is None.
        device: device of the result when ``points`` is None.
    """
    height, width = size
    if points is None or points.shape[1] == 0:
        return torch.zeros(batch_size, 2, height, width, device=device)
    if points.dim() != 3 or points.shape[-1] != 2:
        raise ValueError(f"points must be B×N×2 (x, y), got shape {tuple(points.shape)}")
    if labels is None or labels.shape != points.shape[:2]:
        raise ValueError(
            f"labels must be B×N matching points {tuple(points.shape[:2])}, got "
            f"{None if labels is None else tuple(labels.shape)}"
        )
    points = points.float()
    batch = points.shape[0]
    maps = torch.zeros(batch, 2, height, width, device=points.device)
    r = float(radius)
    reach = int(r) + 1
    for b in range(batch):
        for (x, y), label in zip(points[b].tolist(), labels[b].tolist()):
            channel = {POSITIVE_LABEL: 0, NEGATIVE_LABEL: 1}.get(int(label))
            if channel is None:
                continue
            # Only the pixels within `reach` of the click can be on: draw in a small box.
            x0, x1 = max(int(x) - reach, 0), min(int(x) + reach + 1, width)
            y0, y1 = max(int(y) - reach, 0), min(int(y) + reach + 1, height)
            if x0 >= x1 or y0 >= y1:
                continue
            cols = torch.arange(x0, x1, device=points.device, dtype=torch.float32) - x
            rows = torch.arange(y0, y1, device=points.device, dtype=torch.float32) - y
            disk = (rows[:, None] ** 2 + cols[None, :] ** 2) <= r * r
            maps[b, channel, y0:y1, x0:x1] = torch.maximum(
                maps[b, channel, y0:y1, x0:x1], disk.float()
            )
    return maps


def prompt_map(
    points: torch.Tensor | None,
    labels: torch.Tensor | None,
    sam_logits: torch.Tensor,
    radius: float = 5.0,
) -> torch.Tensor:
    """SAM-REF's 3-channel prompt map D, B×3×S×S in the padded frame.

    Channels: 0 positive click disks, 1 negative click disks (both 0/1), 2 SAM's current
    logits (raw; the refiners normalise them).

    Args:
        points: B×N×2 clicks (x, y) in the S×S frame (see :func:`click_disks`), or None.
        labels: B×N click labels (1 positive, 0 negative; others ignored), or None.
        sam_logits: B×1×S×S SAM logits in the padded frame (see :func:`upsample_logits`).
        radius: click disk radius in pixels of the S×S frame.
    """
    if sam_logits.dim() != 4 or sam_logits.shape[1] != 1:
        raise ValueError(f"sam_logits must be B×1×S×S, got shape {tuple(sam_logits.shape)}")
    size = (sam_logits.shape[-2], sam_logits.shape[-1])
    if points is not None and points.shape[0] != sam_logits.shape[0]:
        raise ValueError(
            f"points batch {points.shape[0]} != sam_logits batch {sam_logits.shape[0]}"
        )
    disks = click_disks(points, labels, size, radius, batch_size=sam_logits.shape[0],
                        device=sam_logits.device)
    return torch.cat([disks.to(sam_logits.dtype), sam_logits], dim=1)
