"""Batched prompt simulation for training (SPEC §3 and §7.3), in torch.

Frames and coordinates:
    * Targets are B×1×h×w maps over the square SAM frame (1 object, 0 background, -1 ignore,
      padding included in ignore); h = w = 256 for SAM's low-res logits, 1024 at full size.
    * Every prompt is returned in the 1024 frame that ``Sam.decode`` takes: points B×N×2 as
      (x, y), labels B×N (1 positive, 0 negative, -1 padding), boxes B×4 as XYXY.
    * A map cell (row i, col j) maps to the frame point x = (j + 0.5)·s - 0.5, y = (i + 0.5)·s - 0.5,
      s = frame / w, i.e. the pixel at the cell's centre.

Randomness: every draw comes from ``SampleRandom``, one independent stream per sample, so a
sample's prompts depend only on its own seed, never on which other samples share its batch (a
2-process DDP run then sees exactly the prompts of the 1-process run).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from clicksam.train.distance import beyond_fraction, squared_distance_maps

FRAME = 1024


class SampleRandom:
    """Per-sample random streams: draw k of sample b depends only on (seeds[b], k).

    Args:
        seeds: one integer seed per sample.
        device: where returned tensors live (draws are made on the CPU).
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.generators = [torch.Generator().manual_seed(int(s) & 0x7FFFFFFFFFFFFFFF) for s in seeds]
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.generators)

    def subset(self, index: Sequence[int]) -> "SampleRandom":
        """The streams of the samples ``index`` (shared, not copied: a draw from the subset
        advances those samples' streams), for a group of the batch prompted one way."""
        out = SampleRandom([], self.device)
        out.generators = [self.generators[int(i)] for i in index]
        return out

    def uniform(self, *shape: int) -> torch.Tensor:
        """B×shape uniform draws in [0, 1), float32."""
        out = torch.stack([torch.rand(shape, generator=g) for g in self.generators])
        return out.to(self.device)

    def choice(self, probs: Sequence[float], values: Sequence[int]) -> torch.Tensor:
        """One value per sample drawn with the given probabilities. Returns B long."""
        p = torch.tensor(probs, dtype=torch.float64)
        cdf = (p / p.sum()).cumsum(0)
        u = self.uniform().cpu().double()
        idx = torch.searchsorted(cdf, u).clamp(max=len(values) - 1)
        return torch.tensor(values, dtype=torch.long)[idx].to(self.device)


def geometric_counts(rng: SampleRandom, max_count: int = 20, gamma: float = 0.6, min_count: int = 1) -> torch.Tensor:
    """Click counts n with p(n) ∝ γ^n for min_count ≤ n ≤ max_count (FocSAM, RITM). Returns B long."""
    if not 0 <= min_count <= max_count:
        raise ValueError(f"need 0 <= min_count <= max_count, got {min_count}, {max_count}")
    values = list(range(min_count, max_count + 1))
    return rng.choice([gamma**k for k in values], values)


def cells_to_frame(rows: torch.Tensor, cols: torch.Tensor, map_size: int, frame: int = FRAME) -> torch.Tensor:
    """Cell indices of a map_size² map -> (x, y) frame points at the cell centres, shape ...×2."""
    s = frame / map_size
    return torch.stack([(cols.float() + 0.5) * s - 0.5, (rows.float() + 0.5) * s - 0.5], dim=-1)


def _pick_cells(candidates: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick one True cell per sample uniformly: the ⌊u·count⌋-th True cell in row-major order.

    candidates: B×h×w bool; u: B uniforms. Returns rows B, cols B, found B bool.
    """
    b, h, w = candidates.shape
    flat = candidates.reshape(b, -1)
    count = flat.sum(1)
    rank = (u * count).floor().long().clamp(max=(count - 1).clamp(min=0))
    order = flat.long().cumsum(1) - 1  # index of each True cell among the True cells
    hit = flat & (order == rank[:, None])
    pos = hit.float().argmax(1)
    return pos // w, pos % w, count > 0


@dataclass
class Clicks:
    """A growing set of clicks per sample, in the 1024 frame (see the module docstring).

    Attributes:
        coords: B×N×2 (x, y); labels: B×N (1, 0, or -1 for padding / no click this round).
        clicked: B×h×w bool, map cells already clicked (never chosen again).
    """

    coords: torch.Tensor
    labels: torch.Tensor
    clicked: torch.Tensor

    @classmethod
    def empty(cls, batch: int, map_size: int, device: torch.device | str = "cpu") -> "Clicks":
        return cls(
            coords=torch.zeros(batch, 0, 2, device=device),
            labels=torch.zeros(batch, 0, dtype=torch.long, device=device),
            clicked=torch.zeros(batch, map_size, map_size, dtype=torch.bool, device=device),
        )

    def add(self, coords: torch.Tensor, labels: torch.Tensor) -> "Clicks":
        """Append one click per sample (coords B×2, labels B; label -1 adds padding)."""
        return Clicks(
            torch.cat([self.coords, coords[:, None].to(self.coords)], 1),
            torch.cat([self.labels, labels[:, None].to(self.labels)], 1),
            self.clicked,
        )

    @property
    def num_clicks(self) -> torch.Tensor:
        """B: real (non-padding) clicks per sample."""
        return (self.labels >= 0).sum(1)


def sample_next_click(
    target: torch.Tensor, pred: torch.Tensor, clicks: Clicks, rng: SampleRandom, ratio: float = 1.7,
    active: torch.Tensor | None = None,
) -> Clicks:
    """Add the next training click (SPEC §7.3): in the error region (false negatives vs false
    positives) with the larger interior distance, uniformly among its cells whose distance is
    above max/ratio. Samples without errors, or not ``active``, get a padding click. Distances are
    exact squared integers (``squared_distance_maps``), so every comparison is exact.

    Args:
        target: B×1×h×w (1/0/-1) on the map grid; pred: B×1×h×w bool prediction on the same grid.
        clicks: clicks so far (its ``clicked`` map is updated in place).
        rng: per-sample streams (one uniform drawn per sample, active or not).
        ratio: the 1.7 of FocSAM (RITM's training sampler uses 2).
        active: B bool, samples that take a click this round (default: all).
    Returns:
        the clicks with one more column.
    """
    if target.shape != pred.shape or target.dim() != 4:
        raise ValueError(f"target and pred must both be B×1×h×w, got {tuple(target.shape)} and {tuple(pred.shape)}")
    b, _, h, w = target.shape
    u = rng.uniform()
    gt = target[:, 0]
    fn = (gt == 1) & ~pred[:, 0]
    fp = (gt == 0) & pred[:, 0]
    sq = squared_distance_maps(torch.cat([fn, fp], 0))
    sq = torch.where(torch.cat([clicks.clicked, clicks.clicked], 0), 0, sq)
    sq_fn, sq_fp = sq[:b], sq[b:]
    max_fn = sq_fn.flatten(1).max(1).values
    max_fp = sq_fp.flatten(1).max(1).values
    positive = max_fn > max_fp
    chosen = torch.where(positive[:, None, None], sq_fn, sq_fp)
    best = torch.maximum(max_fn, max_fp)
    candidates = beyond_fraction(chosen, best, ratio) & (chosen > 0)
    rows, cols, found = _pick_cells(candidates, u)
    if active is not None:
        found = found & active.to(found.device)
    labels = torch.where(found, positive.long(), torch.full_like(rows, -1))
    idx = torch.nonzero(found).flatten()
    clicks.clicked[idx, rows[idx], cols[idx]] = True
    return clicks.add(cells_to_frame(rows, cols, w), labels)


def _pick_many(
    candidates: torch.Tensor, counts: torch.Tensor, rng: SampleRandom, max_count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``counts[b]`` distinct uniform cells of ``candidates[b]`` (B×h×w bool).

    Returns coords B×max_count×2 in the frame and valid B×max_count bool.
    """
    b, h, w = candidates.shape
    keys = rng.uniform(h * w)
    keys = torch.where(candidates.reshape(b, -1), keys, torch.full_like(keys, -1.0))
    k = min(max_count, h * w)
    top = keys.topk(k, dim=1)
    valid = (top.values >= 0) & (torch.arange(k, device=keys.device)[None] < counts[:, None])
    coords = cells_to_frame(top.indices // w, top.indices % w, w)
    if k < max_count:
        coords = F.pad(coords, (0, 0, 0, max_count - k))
        valid = F.pad(valid, (0, max_count - k))
    return coords, valid


def _dilation_distance(obj: torch.Tensor, max_radius: int) -> torch.Tensor:
    """Chessboard distance from the object (B×h×w bool) up to ``max_radius`` (inf beyond)."""
    reach = obj.float()[:, None]
    dist = torch.where(obj, 0.0, float("inf"))
    for step in range(1, max_radius + 1):
        reach = F.max_pool2d(reach, 3, stride=1, padding=1)
        dist = torch.where((reach[:, 0] > 0) & torch.isinf(dist), float(step), dist)
    return dist


def multi_point_prompts(
    target: torch.Tensor, rng: SampleRandom, max_points: int = 24, gamma: float = 0.7,
    border_prob: float = 0.7, border_ratio: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A RITM-style multi-point sampler: n⁺ ∝ γ^n (1..max) positives, n⁻ ∝ γ^n (0..max)
    negatives. The first positive lies deep inside the object (distance > max/1.7), the others
    anywhere in it away from its edge; negatives come from a band around the object (width
    ``border_ratio``·√area cells, probability ``border_prob``) or from anywhere in the background.

    Args:
        target: B×1×h×w map (1/0/-1). rng: per-sample streams.
    Returns:
        coords B×(2·max_points)×2 in the 1024 frame, labels B×(2·max_points) (-1 = padding).
    """
    b, _, h, w = target.shape
    obj = target[:, 0] == 1
    background = target[:, 0] == 0
    n_pos = geometric_counts(rng, max_points, gamma, 1)
    n_neg = geometric_counts(rng, max_points, gamma, 0)
    use_border = rng.uniform() < border_prob
    inner = squared_distance_maps(obj)  # squared: distance ≥ 2 is inner ≥ 4
    best = inner.flatten(1).max(1).values
    first_rows, first_cols, has_obj = _pick_cells(beyond_fraction(inner, best, 1.7), rng.uniform())
    first = cells_to_frame(first_rows, first_cols, w)
    eroded = torch.where((best >= 4)[:, None, None], inner >= 4, obj)
    eroded[torch.arange(b), first_rows, first_cols] = False
    rest, rest_valid = _pick_many(eroded, n_pos - 1, rng, max_points - 1)
    radius = (border_ratio * obj.flatten(1).sum(1).float().sqrt()).ceil().clamp(min=2)
    max_radius = int(radius.max().item()) if b else 2
    band = (_dilation_distance(obj, max_radius) <= radius[:, None, None]) & background
    neg_pool = torch.where(use_border[:, None, None] & band.flatten(1).any(1)[:, None, None], band, background)
    neg, neg_valid = _pick_many(neg_pool, n_neg, rng, max_points)
    coords = torch.cat([first[:, None], rest, neg], 1)
    labels = torch.cat([
        torch.where(has_obj, 1, -1)[:, None],
        torch.where(rest_valid, 1, -1),
        torch.where(neg_valid, 0, -1),
    ], 1).long()
    return coords, labels


def random_positive_points(
    target: torch.Tensor, rng: SampleRandom, min_points: int = 1, max_points: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable-SAM's point prompts: a uniform count in [min, max] of distinct uniform object cells.

    Returns coords B×max_points×2 in the 1024 frame and labels B×max_points (1, or -1 padding).
    """
    if not 1 <= min_points <= max_points:
        raise ValueError(f"need 1 <= min_points <= max_points, got {min_points}, {max_points}")
    counts = (min_points + (rng.uniform() * (max_points - min_points + 1)).floor().long()).clamp(max=max_points)
    coords, valid = _pick_many(target[:, 0] == 1, counts, rng, max_points)
    return coords, torch.where(valid, 1, -1).long()


def object_boxes(target: torch.Tensor, frame: int = FRAME) -> torch.Tensor:
    """Tight XYXY boxes (inclusive pixel extents, as ``masks_to_boxes``) of the object in the
    1024 frame. target: B×1×h×w. Returns B×4 float; an empty object gives the zero box."""
    obj = target[:, 0] == 1
    b, h, w = obj.shape
    s = frame / w
    cols = obj.any(1)
    rows = obj.any(2)
    ar_w = torch.arange(w, device=obj.device)
    ar_h = torch.arange(h, device=obj.device)
    x0 = torch.where(cols, ar_w, w).min(1).values
    x1 = torch.where(cols, ar_w, -1).max(1).values
    y0 = torch.where(rows, ar_h, h).min(1).values
    y1 = torch.where(rows, ar_h, -1).max(1).values
    boxes = torch.stack([x0 * s, y0 * s, (x1 + 1) * s - 1, (y1 + 1) * s - 1], 1).float()
    return torch.where(cols.any(1)[:, None], boxes, torch.zeros_like(boxes))


def noisy_boxes(boxes: torch.Tensor, image_sizes: torch.Tensor, rng: SampleRandom, noise: float = 0.5) -> torch.Tensor:
    """Stable-SAM's noisy boxes: shift the centre by U(-s,s)·(w/2, h/2) and the size by
    U(-s,s)·(w, h), then clip to the image (the box may then cut the object).

    Args:
        boxes: B×4 XYXY in the 1024 frame. image_sizes: B×2 (h, w) of the resized image in the
            frame (top-left aligned). noise: s in [0, 1).
    Returns:
        B×4 XYXY, at least one pixel wide and high.
    """
    if not 0 <= noise < 1:
        raise ValueError(f"box noise must be in [0, 1), got {noise}")
    u = (rng.uniform(4) * 2 - 1) * noise
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + u[:, 0] * w / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + u[:, 1] * h / 2
    nw = (w * (1 + u[:, 2])).clamp(min=1)
    nh = (h * (1 + u[:, 3])).clamp(min=1)
    max_x = image_sizes[:, 1].to(boxes) - 1
    max_y = image_sizes[:, 0].to(boxes) - 1
    x0 = torch.minimum((cx - nw / 2).clamp(min=0), max_x - 1)
    y0 = torch.minimum((cy - nh / 2).clamp(min=0), max_y - 1)
    x1 = torch.maximum(torch.minimum(cx + nw / 2, max_x), x0 + 1)
    y1 = torch.maximum(torch.minimum(cy + nh / 2, max_y), y0 + 1)
    return torch.stack([x0, y0, x1, y1], 1)

DecodeFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def frame_points(coords: torch.Tensor, frame: int) -> torch.Tensor:
    """Points given in the 1024 frame (pixel centres, x y) -> the same positions in a ``frame``
    frame: the click simulator works in the 1024 frame, a model with another frame (a small-scale
    experiment) takes its clicks rescaled."""
    return coords if frame == FRAME else (coords + 0.5) * (frame / FRAME) - 0.5


def session_logits(model: torch.nn.Module, features: Any, coords: torch.Tensor, labels: torch.Tensor,
                   mask_input: Optional[torch.Tensor]) -> torch.Tensor:
    """SAM's low-res logits K×1×h×w for K click sequences, decoded as ``InteractiveSession``
    decodes them: a lone first click (no ``mask_input``) takes the multimask output with the
    highest predicted IoU, every later click the single-mask output.

    Args:
        features: the feature bundle of the K images (``Batch.features_at``; SAM also takes its
            K×C×H×W embedding alone); coords K×N×2 (x, y) and labels K×N in the model's frame;
            mask_input K×1×h×w previous logits or None.
    """
    points = (coords, labels)
    if mask_input is None and coords.shape[1] == 1:
        out = model.decode(features, points, multimask_output=True)
        best = out.iou_predictions.argmax(1)
        return out.low_res_logits[torch.arange(coords.shape[0], device=best.device), best][:, None]
    return model.decode(features, points, mask_input=mask_input, multimask_output=False).low_res_logits


def simulate_iterative_clicks(
    decode: DecodeFn, target: torch.Tensor, counts: torch.Tensor, rng: SampleRandom, ratio: float = 1.7
) -> tuple[Clicks, torch.Tensor | None, torch.Tensor]:
    """The no-gradient part of iterative training (SPEC §7.3): click 1 from an empty prediction,
    then for rounds 2..n decode and click again, each sample stopping at its own count.

    Args:
        decode: ``decode(index, coords, labels, mask_input) -> logits`` for the samples ``index``
            (K long), with coords K×N×2 / labels K×N in the 1024 frame and mask_input K×1×256×256
            or None; returns K×1×256×256 low-res logits. Called under ``torch.no_grad()``.
        target: B×1×h×w map (1/0/-1) the clicks are placed on.
        counts: B long, clicks per sample (≥ 1), e.g. from ``geometric_counts``.
        rng: per-sample streams.
        ratio: see ``sample_next_click``.
    Returns:
        (clicks with every sample's n clicks, previous low-res logits B×1×256×256 or None when no
        sample had a round 2, has_prev B bool: samples whose previous logits are real).
        The caller runs the final, gradient-carrying decode on them.
    """
    b, _, h, w = target.shape
    device = target.device
    clicks = Clicks.empty(b, h, device)
    empty = torch.zeros(b, 1, h, w, dtype=torch.bool, device=device)
    clicks = sample_next_click(target, empty, clicks, rng, ratio)
    prev: torch.Tensor | None = None
    has_prev = torch.zeros(b, dtype=torch.bool, device=device)
    for round_index in range(1, int(counts.max().item()) if b else 1):
        active = counts > round_index
        idx = torch.nonzero(active).flatten()
        with torch.no_grad():
            mask_in = None if prev is None else prev[idx]
            if mask_in is not None and not bool(has_prev[idx].all()):
                raise RuntimeError("internal error: an active sample lacks its previous logits")
            logits = decode(idx, clicks.coords[idx], clicks.labels[idx], mask_in).detach().float()
        if prev is None:
            prev = torch.zeros(b, 1, *logits.shape[-2:], device=device)
        prev[idx] = logits
        has_prev[idx] = True
        pred = F.interpolate(prev, size=(h, w), mode="bilinear", align_corners=False) > 0
        clicks = sample_next_click(target, pred, clicks, rng, ratio, active=active)
    return clicks, prev, has_prev
