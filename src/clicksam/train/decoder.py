"""Method ``decoder``: fine-tune SAM's mask decoder with simulated iterative clicks (FocSAM's
stage 1). The image and prompt encoders stay frozen; only the mask decoder trains and is saved
(``mask_decoder``; SAM 2's ``sam_mask_decoder`` without its skip projections, which make the
per-image features).

Per sample and step (SPEC §7.3): draw n ~ p(k) ∝ γ^k (k ≤ ``max_clicks``); place click 1 on the
empty prediction; for clicks 2..n decode without gradient (single-mask token, previous low-res
logits as ``mask_input``) and click in the larger error region; then decode once more with
gradient and take NFL + ``point_weight``·point loss + ``iou_weight``·IoU-head loss.

Options (config ``options``):
    max_clicks (20), gamma (0.6): the click-count distribution.
    click_ratio (1.7): clicks land where the error's distance exceeds max/ratio.
    click_map_size (256): grid of the click simulation (the low-res logits' grid; smaller is cheaper).
    nfl_alpha (0.5), nfl_gamma (2.0): the normalised focal loss.
    point_weight (1.0): FocSAM's point loss. iou_weight (1.0): MSE of the IoU head (0 = off).
    sampler ("iterative" | "multipoint"): "multipoint" starts from RITM's multi-point sampler
        (``multipoint_max`` points, geometric counts) plus 0-3 iterative clicks.
    multipoint_max (24).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from clicksam.train import losses, prompts
from clicksam.train.method import Batch, LossOutput, TrainMethod, register_method


@register_method
class DecoderTraining(TrainMethod):
    """Fine-tunes ``model.mask_decoder`` (see the module docstring)."""

    name = "decoder"
    trainable_prefixes = ("mask_decoder",)
    find_unused_parameters = False
    default_options = {
        "max_clicks": 20, "gamma": 0.6, "click_ratio": 1.7, "click_map_size": 256,
        "nfl_alpha": 0.5, "nfl_gamma": 2.0, "point_weight": 1.0, "iou_weight": 1.0,
        "sampler": "iterative", "multipoint_max": 24,
    }

    def __init__(self, model, options=None) -> None:
        super().__init__(model, options)
        if self.options["sampler"] not in ("iterative", "multipoint"):
            raise ValueError(f"decoder option 'sampler' must be 'iterative' or 'multipoint', got {self.options['sampler']!r}")
        if not 1 <= int(self.options["max_clicks"]) <= 64:
            raise ValueError(f"decoder option 'max_clicks' must be in 1..64, got {self.options['max_clicks']}")

    def prepare(self) -> None:
        """Train the decoder except the parts the single-mask loss cannot reach: the multimask
        hypernetworks (tokens 1-3) and, with ``iou_weight`` 0, the IoU head. Freezing them keeps
        AdamW's weight decay off them and lets DDP skip its unused-parameter search."""
        super().prepare()
        decoder = self.model.mask_decoder
        for mlp in list(decoder.output_hypernetworks_mlps)[1:]:
            mlp.requires_grad_(False)
        if float(self.options["iou_weight"]) == 0:
            decoder.iou_prediction_head.requires_grad_(False)

    def _decode(self, features: dict[str, torch.Tensor], coords: torch.Tensor, labels: torch.Tensor,
                mask_input: torch.Tensor | None):
        coords = prompts.frame_points(coords, int(self.model.image_size))
        return self.model.decode(features, points=(coords, labels), mask_input=mask_input, multimask_output=False)

    def _initial_prompts(self, batch: Batch, click_target: torch.Tensor):
        """Clicks before the gradient step, for either sampler.

        Returns (clicks, previous logits B×1×256×256 or None, has_prev B bool, widths B long:
        the number of click columns that belong to each sample)."""
        opts, rng = self.options, batch.rng
        emb = batch.embedding

        def decode(idx, coords, labels, mask_input):
            return self._decode(batch.features_at(idx), coords, labels, mask_input).low_res_logits

        if opts["sampler"] == "iterative":
            counts = prompts.geometric_counts(rng, int(opts["max_clicks"]), float(opts["gamma"]))
            clicks, prev, has_prev = prompts.simulate_iterative_clicks(
                decode, click_target, counts, rng, float(opts["click_ratio"]))
            return clicks, prev, has_prev, counts
        coords, labels = prompts.multi_point_prompts(click_target, rng, int(opts["multipoint_max"]), 0.7)
        extra = prompts.geometric_counts(rng, 3, 0.6, min_count=0)
        b = batch.size
        clicks = prompts.Clicks(coords, labels, torch.zeros(b, *click_target.shape[-2:], dtype=torch.bool, device=emb.device))
        prev = None
        has_prev = torch.zeros(b, dtype=torch.bool, device=emb.device)
        for round_index in range(int(extra.max().item())):
            active = extra > round_index
            idx = torch.nonzero(active).flatten()
            with torch.no_grad():
                mask_in = None if prev is None else prev[idx]
                if mask_in is not None and not bool(has_prev[idx].all()):
                    mask_in = None
                logits = decode(idx, clicks.coords[idx], clicks.labels[idx], mask_in).float()
            if prev is None:
                prev = torch.zeros(b, 1, *logits.shape[-2:], device=emb.device)
            prev[idx] = logits
            has_prev[idx] = True
            pred = F.interpolate(prev, size=click_target.shape[-2:], mode="bilinear", align_corners=False) > 0
            clicks = prompts.sample_next_click(click_target, pred, clicks, rng, float(opts["click_ratio"]), active=active)
        return clicks, prev, has_prev, labels.shape[1] + extra

    def compute_loss(self, batch: Batch) -> LossOutput:
        opts = self.options
        target = batch.target_grid(4 * batch.embedding.shape[-1])  # the low-res logits' grid (256 for SAM)
        click_target = batch.target_grid(int(opts["click_map_size"]))
        clicks, prev, has_prev, widths = self._initial_prompts(batch, click_target)
        # The gradient step, grouped by click count so that no sample sees another one's padding.
        order, logits_parts, iou_parts = [], [], []
        for width, with_prev in sorted({(int(w), bool(h)) for w, h in zip(widths.tolist(), has_prev.tolist())}):
            idx = torch.nonzero((widths == width) & (has_prev == with_prev)).flatten()
            mask_in = prev[idx] if (with_prev and prev is not None) else None
            out = self._decode(batch.features_at(idx), clicks.coords[idx, :width], clicks.labels[idx, :width], mask_in)
            order.append(idx)
            logits_parts.append(out.low_res_logits)
            iou_parts.append(out.iou_predictions[:, 0])
        order_all = torch.cat(order)
        inverse = torch.empty_like(order_all)
        inverse[order_all] = torch.arange(len(order_all), device=order_all.device)
        logits = torch.cat(logits_parts)[inverse]
        iou_pred = torch.cat(iou_parts)[inverse]
        nfl = losses.normalized_focal_loss(logits, target, float(opts["nfl_alpha"]), float(opts["nfl_gamma"]))
        point = losses.click_point_loss(logits, clicks.coords, clicks.labels)
        iou_head = losses.iou_prediction_loss(iou_pred, logits, target)
        loss = (nfl + float(opts["point_weight"]) * point + float(opts["iou_weight"]) * iou_head).mean()
        metrics = {
            "nfl": nfl.mean().detach(), "point": point.mean().detach(), "iou_head": iou_head.mean().detach(),
            "iou": losses.mask_iou(logits, target).mean(), "clicks": clicks.num_clicks.float().mean(),
        }
        return LossOutput(loss, metrics)
