"""Segmentation losses used by the training methods.

Conventions, shared by every function here:
    * ``logits``: B×1×H×W (or B×H×W) raw scores, threshold 0.
    * ``target``: same shape, 1 object, 0 background, -1 ignore (ignored pixels add nothing and
      are not counted in any mean).
    * Each loss is computed per image (a mean over that image's valid pixels) and returns a
      B vector; the caller takes ``.mean()`` or weights it. An image with no valid pixels gets 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-12


def _check(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    if logits.dim() < 3:
        raise ValueError(f"expected B×H×W or B×1×H×W tensors, got {tuple(logits.shape)}")
    # bf16/fp16 logits are promoted to float32; float64 stays float64.
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits = logits.to(dtype).flatten(1)
    target = target.to(dtype).flatten(1)
    valid = (target >= 0).to(dtype)
    return logits, (target > 0.5).to(dtype), valid


def _pixel_weights(weight: torch.Tensor | None, logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The flattened per-pixel weights of a weighted mean: ``valid``, times ``weight`` if given."""
    if weight is None:
        return valid
    if weight.shape != logits.shape:
        raise ValueError(f"weight {tuple(weight.shape)} must match logits {tuple(logits.shape)}")
    return weight.to(valid.dtype).flatten(1) * valid


def normalized_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.5,
    gamma: float = 2.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised focal loss (RITM), optionally with a per-pixel weight map.

    With p_t the probability of the true class, α_t = α for object pixels and 1-α otherwise,
    β = (1-p_t)^γ and n the number of valid pixels, the per-pixel term is
    ``-α_t · β · n / Σβ · log p_t``; the normaliser ``n / Σβ`` is per image and detached. The
    image's loss is the weighted mean ``Σ w·term / Σ w`` over valid pixels (w = 1 without a map).

    Args:
        logits, target: see the module docstring.
        alpha: weight of object pixels (background gets 1-α).
        gamma: focusing exponent.
        weight: optional non-negative per-pixel weights, same shape as ``logits`` (weighted NFL).
    Returns:
        B per-image losses.
    """
    x, y, valid = _check(logits, target)
    log_p = F.logsigmoid(x)
    log_not_p = F.logsigmoid(-x)
    log_pt = torch.where(y > 0, log_p, log_not_p)
    pt = log_pt.exp()
    alpha_t = torch.where(y > 0, torch.full_like(x, alpha), torch.full_like(x, 1 - alpha))
    beta = (1 - pt).pow(gamma) * valid
    scale = (valid.sum(1, keepdim=True) / (beta.sum(1, keepdim=True) + EPS)).detach()
    term = -alpha_t * beta * scale * log_pt
    w = _pixel_weights(weight, logits, valid)
    return (term * w).sum(1) / (w.sum(1) + EPS)


def weighted_normalized_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, alpha: float = 0.5, gamma: float = 2.0
) -> torch.Tensor:
    """NFL with a per-pixel weight map (SAM-REF's patch loss); see ``normalized_focal_loss``."""
    return normalized_focal_loss(logits, target, alpha=alpha, gamma=gamma, weight=weight)


def boundary_weight(target: torch.Tensor, width: int = 5, boost: float = 4.0) -> torch.Tensor:
    """A weight map for weighted NFL: ``1 + boost`` within ``width`` pixels of the object's
    boundary, 1 elsewhere. ``target`` B×1×H×W (1/0/-1); returns the same shape, float."""
    if target.dim() != 4:
        raise ValueError(f"target must be B×1×H×W, got {tuple(target.shape)}")
    obj = (target > 0.5).float()
    k = 2 * width + 1
    dilated = F.max_pool2d(obj, k, stride=1, padding=width)
    eroded = -F.max_pool2d(-obj, k, stride=1, padding=width)
    return 1.0 + boost * (dilated - eroded)


def bce_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy with logits, mean over each image's valid pixels, or the weighted
    mean ``Σ w·bce / Σ w`` with a non-negative per-pixel ``weight`` (same shape). Returns B."""
    x, y, valid = _check(logits, target)
    per_pixel = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    w = _pixel_weights(weight, logits, valid)
    return (per_pixel * w).sum(1) / (w.sum(1) + EPS)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - (2Σpg + s) / (Σp + Σg + s)`` over valid pixels, p = σ(logits). Returns B."""
    x, y, valid = _check(logits, target)
    p = torch.sigmoid(x) * valid
    g = y * valid
    return 1 - (2 * (p * g).sum(1) + smooth) / (p.sum(1) + g.sum(1) + smooth)


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft IoU (Jaccard) loss ``1 - (Σpg + s) / (Σp + Σg - Σpg + s)`` over valid pixels. Returns B."""
    x, y, valid = _check(logits, target)
    p = torch.sigmoid(x) * valid
    g = y * valid
    inter = (p * g).sum(1)
    return 1 - (inter + smooth) / (p.sum(1) + g.sum(1) - inter + smooth)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hard IoU of ``logits > 0`` with the object over valid pixels, no gradient. Returns B
    (1 when both the prediction and the object are empty)."""
    with torch.no_grad():
        x, y, valid = _check(logits, target)
        pred = (x > 0).float() * valid
        g = y * valid
        inter = (pred * g).sum(1)
        union = pred.sum(1) + g.sum(1) - inter
        return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def iou_prediction_loss(iou_pred: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between SAM's predicted IoU (B) and the hard IoU of ``logits`` with
    the target (trains the IoU head). Returns B."""
    if iou_pred.dim() != 1 or iou_pred.shape[0] != logits.shape[0]:
        raise ValueError(f"iou_pred must be a B vector matching logits' batch, got {tuple(iou_pred.shape)}")
    iou = mask_iou(logits, target)
    return (iou_pred.to(iou.dtype) - iou) ** 2


def click_point_loss(
    logits: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor, frame_size: int = 1024
) -> torch.Tensor:
    """FocSAM's point loss: mean squared error of σ(logit) at each click against the click's
    label (1 positive, 0 negative); padding clicks (label -1) are skipped.

    Args:
        logits: B×1×h×w low-res logits covering the square ``frame_size`` frame (SAM: 256×256
            over the padded 1024 frame).
        coords: B×N×2 click positions (x, y) in ``frame_size`` pixels.
        labels: B×N click labels (1, 0, or -1 for padding).
        frame_size: side of the frame that ``coords`` are given in.
    Returns:
        B per-image losses (0 for an image without clicks).
    """
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"logits must be B×1×h×w, got {tuple(logits.shape)}")
    if coords.dim() != 3 or coords.shape[-1] != 2 or labels.shape != coords.shape[:2]:
        raise ValueError(f"coords must be B×N×2 and labels B×N, got {tuple(coords.shape)} and {tuple(labels.shape)}")
    # Pixel centres: x + 0.5 in the frame, mapped to [-1, 1] with align_corners=False.
    grid = (coords.float() + 0.5) / frame_size * 2 - 1
    sampled = F.grid_sample(logits.float(), grid[:, :, None, :], mode="bilinear", align_corners=False)
    prob = torch.sigmoid(sampled[:, 0, :, 0])  # B×N
    valid = (labels >= 0).float()
    err = (prob - (labels == 1).float()) ** 2 * valid
    return err.sum(1) / valid.sum(1).clamp(min=1)
