"""Method ``focsam``: train the FocusRefiner with SAM and the (fine-tuned) decoder frozen
(FocSAM's stage 2; stage 1 is the ``decoder`` method, loaded as a method file before this one).

Per sample and step, following the official ``ClickMixSegmentorRefine`` (SPEC §4, §7.3):
    1. n ~ p(k) ∝ γ^k (k ≤ ``max_clicks``) and the refine step r ~ p(k) ∝ γ_r^k (k ≤ n);
    2. click 1 on the empty prediction, then r rounds of decode-on-F and click (no gradient);
    3. the coarse decode on F with those r + 1 clicks gives the coarse logits and the token;
       the focus box is expanded by U(1, ``expand_max``) per axis; F_r = refiner(F, ...);
    4. n − r more rounds of decode-on-F_r and click (no gradient);
    5. the final decode on F_r with all n + 1 clicks, with gradient into the refiner;
       loss = NFL + ``point_weight`` · point loss.
The refiner runs once per step (with gradient) and its detached output serves the no-gradient
rounds of 4 (the official code runs it twice, with a second expansion draw). Every decode sees
only its sample's real clicks: samples are grouped by click count, never padded together.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from clicksam.methods.focsam.focus import box_to_cells, focus_box
from clicksam.train import losses, prompts
from clicksam.train.method import Batch, LossOutput, TrainMethod, register_method


def truncated_geometric(u: torch.Tensor, max_counts: torch.Tensor, gamma: float) -> torch.Tensor:
    """Counts k in 1..max_counts[b] with p(k) ∝ γ^k, by inverting the CDF at the uniforms u (B)."""
    out = torch.empty_like(max_counts)
    for b, (draw, top) in enumerate(zip(u.tolist(), max_counts.tolist())):
        weights = torch.tensor([gamma**k for k in range(1, int(top) + 1)], dtype=torch.float64)
        cdf = torch.cumsum(weights / weights.sum(), 0)
        out[b] = int(torch.searchsorted(cdf, torch.tensor(draw, dtype=torch.float64)).clamp(max=int(top) - 1)) + 1
    return out


# decode(index, coords, labels, mask_input) -> (low-res logits, single-mask token)
DecodeFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor]],
                    tuple[torch.Tensor, torch.Tensor]]


def decode_grouped(
    decode: DecodeFn,
    clicks: prompts.Clicks,
    prev: Optional[torch.Tensor],
    has_prev: torch.Tensor,
    index: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the samples ``index`` with their real clicks only (labels ≥ 0), in groups of equal
    click count and previous-logits availability.

    ``decode(idx, coords K×n×2, labels K×n, mask_input K×1×256×256 | None)`` returns (logits
    K×1×256×256, token K×1×C). Returns logits and tokens for ``index`` in its order.
    """
    real = clicks.labels[index] >= 0
    counts = real.sum(1)
    logits_out: list[Optional[torch.Tensor]] = [None] * len(index)
    tokens_out: list[Optional[torch.Tensor]] = [None] * len(index)
    keys = sorted({(int(c), bool(h)) for c, h in zip(counts.tolist(), has_prev[index].tolist())})
    for count, with_prev in keys:
        members = torch.nonzero((counts == count) & (has_prev[index] == with_prev)).flatten()
        idx = index[members]
        order = torch.argsort((~real[members]).to(torch.int8), dim=1, stable=True)[:, :count]  # real columns first
        coords = torch.gather(clicks.coords[idx], 1, order[..., None].expand(-1, -1, 2))
        labels = torch.gather(clicks.labels[idx], 1, order)
        mask_input = prev[idx] if (with_prev and prev is not None) else None
        logits, tokens = decode(idx, coords, labels, mask_input)
        for j, m in enumerate(members.tolist()):
            logits_out[m], tokens_out[m] = logits[j : j + 1], tokens[j : j + 1]
    return torch.cat(logits_out), torch.cat(tokens_out)  # type: ignore[arg-type]


@register_method
class FocSamTraining(TrainMethod):
    """Trains ``model.focus_refiner`` (see the module docstring).

    Options: ``max_clicks`` (20), ``gamma`` (0.6), ``refine_gamma`` (0.6), ``click_ratio`` (1.7),
    ``click_map_size`` (256), ``expand_max`` (1.4), ``nfl_alpha`` (0.5), ``nfl_gamma`` (2.0),
    ``point_weight`` (1.0), ``base_iou_metric`` (True: also decode the final clicks on the
    unrefined embedding, without gradient, and log that IoU as ``iou_base``, the number the
    refiner must beat; about one extra decode per step).
    """

    name = "focsam"
    stages = ("focsam",)
    trainable_prefixes = ("focus_refiner",)
    # the refiner is trained against this (stage-1 fine-tuned, frozen) decoder: the file carries both
    saved_prefixes = ("mask_decoder",)
    find_unused_parameters = False
    default_options = {
        "max_clicks": 20, "gamma": 0.6, "refine_gamma": 0.6, "click_ratio": 1.7, "click_map_size": 256,
        "expand_max": 1.4, "nfl_alpha": 0.5, "nfl_gamma": 2.0, "point_weight": 1.0,
        "base_iou_metric": True,
    }

    def __init__(self, model, options=None) -> None:
        super().__init__(model, options)
        if not 1 <= int(self.options["max_clicks"]) <= 64:
            raise ValueError(f"focsam option 'max_clicks' must be in 1..64, got {self.options['max_clicks']}")
        if float(self.options["expand_max"]) < 1.0:
            raise ValueError(f"focsam option 'expand_max' must be at least 1.0, got {self.options['expand_max']}")

    def _decode(self, batch: Batch, embedding: torch.Tensor):
        """decode(idx, ...) on ``embedding`` (the batch's, or a refined one) with the rest of the
        batch's feature bundle."""
        frame = int(self.model.image_size)

        def decode(idx, coords, labels, mask_input):
            coords = prompts.frame_points(coords, frame)
            out = self.model.decode(batch.features_at(idx, embedding[idx]), points=(coords, labels.float()),
                                    mask_input=mask_input, multimask_output=False)
            return out.low_res_logits, out.mask_tokens[:, :1]
        return decode

    def _click_rounds(self, decode, target, clicks, prev, has_prev, rounds, rng):
        """``rounds[b]`` rounds of (decode without gradient, click) per sample."""
        ratio = float(self.options["click_ratio"])
        map_size = target.shape[-1]
        for round_index in range(int(rounds.max().item()) if len(rounds) else 0):
            active = rounds > round_index
            idx = torch.nonzero(active).flatten()
            with torch.no_grad():
                logits, _ = decode_grouped(decode, clicks, prev, has_prev, idx)
            if prev is None:
                prev = torch.zeros(len(rounds), 1, *logits.shape[-2:], device=logits.device)
            prev[idx] = logits.detach().float()
            has_prev[idx] = True
            pred = F.interpolate(prev, size=(map_size, map_size), mode="bilinear", align_corners=False) > 0
            clicks = prompts.sample_next_click(target, pred, clicks, rng, ratio, active=active)
        return clicks, prev, has_prev

    def compute_loss(self, batch: Batch) -> LossOutput:
        opts, rng = self.options, batch.rng
        embedding = batch.embedding
        target = batch.target_grid(4 * embedding.shape[-1])  # the low-res logits' grid (256 for SAM)
        click_target = batch.target_grid(int(opts["click_map_size"]))
        total = prompts.geometric_counts(rng, int(opts["max_clicks"]), float(opts["gamma"]))
        refine_at = truncated_geometric(rng.uniform().cpu(), total.cpu(), float(opts["refine_gamma"])).to(total.device)
        ratios = 1.0 + (float(opts["expand_max"]) - 1.0) * rng.uniform(2)  # B×2 (height, width)

        on_features = self._decode(batch, embedding)
        clicks, prev, has_prev = prompts.simulate_iterative_clicks(
            lambda idx, c, lab, m: on_features(idx, c, lab, m)[0], click_target, refine_at + 1, rng,
            float(opts["click_ratio"]),
        )
        everyone = torch.arange(batch.size, device=embedding.device)
        with torch.no_grad():
            coarse, token = decode_grouped(on_features, clicks, prev, has_prev, everyone)
        refiner = self.model.focus_refiner
        boxes = torch.cat([focus_box(coarse[b : b + 1], tuple(ratios[b].tolist()), refiner.frame_size)
                           for b in range(batch.size)])
        cells = box_to_cells(boxes, embedding.shape[-1], refiner.frame_size)
        refined = refiner(embedding, coarse, token, cells=cells)

        on_refined = self._decode(batch, refined.detach())
        clicks, prev, has_prev = self._click_rounds(on_refined, click_target, clicks, prev, has_prev,
                                                    total - refine_at, rng)
        logits, _ = decode_grouped(self._decode(batch, refined), clicks, prev, has_prev, everyone)
        nfl = losses.normalized_focal_loss(logits, target, float(opts["nfl_alpha"]), float(opts["nfl_gamma"]))
        point = losses.click_point_loss(logits, clicks.coords, clicks.labels)
        loss = (nfl + float(opts["point_weight"]) * point).mean()
        metrics = {
            "nfl": nfl.mean().detach(), "point": point.mean().detach(),
            "iou": losses.mask_iou(logits.detach(), target).mean(), "clicks": clicks.num_clicks.float().mean(),
            "refine_at": refine_at.float().mean(), "focus_cells": cells.float().mean(dim=(1, 2)).mean(),
        }
        if opts["base_iou_metric"]:
            with torch.no_grad():  # the frozen decoder on F with the same clicks and previous logits
                base_logits, _ = decode_grouped(on_features, clicks, prev, has_prev, everyone)
            metrics["iou_base"] = losses.mask_iou(base_logits, target).mean()
        return LossOutput(loss, metrics)
