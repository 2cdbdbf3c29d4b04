"""``clicksam train --method sam-ref``: train SAM-REF's refiners with SAM frozen (SPEC §5).

One step per sample: n clicks (p(n) ∝ γ^n) are simulated with SAM alone and no gradient
(SPEC §7.3), SAM decoding as a session does (best of the three masks for a lone first click,
the single mask afterwards); SAM decodes clicks n−1 and n (frozen, no gradient); SAM-REF refines click n−1
without gradient to get the previous final mask and error area the selector and the detail
window need, then refines click n with gradient. Losses:

- global: NFL + Dice of the GFR output against the target, BCE of the GFR error map against
  "SAM's mask is wrong" (``(M_SAM > 0) != target``);
- patch: boundary-weighted NFL of the LFR output on the detail window against the target
  crop, BCE of the LFR error map against "the patch's base is wrong".

Option ``mask_loss="bce"`` puts BCE (boundary-weighted on the patch) where these have NFL;
option ``patch_dice`` adds a Dice term on the patch, as the global mask loss has one;
option ``patch_refined`` also puts the patch loss on the LFR's own prediction M̄ (before the gate).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from clicksam.train import losses
from clicksam.train.method import Batch, LossOutput, TrainMethod, register_method
from clicksam.train.prompts import frame_points, geometric_counts, session_logits, simulate_iterative_clicks

from .model import SamRef, SamRefOutput
from .window import Window


def error_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Where a mask is wrong: B×1×H×W float, 1 wrong / 0 right / -1 ignore (target -1)."""
    wrong = ((logits > 0).float() != (target > 0.5).float()).float()
    return torch.where(target < 0, torch.full_like(wrong, -1.0), wrong)


def crop_target(target: torch.Tensor, windows: Sequence[Window], size: int) -> torch.Tensor:
    """Crop B×1×S×S (1/0/-1) targets to each window and resize (nearest) to B×1×size×size."""
    crops = [
        F.interpolate(target[b:b + 1, :, y0:y1, x0:x1].float(), size=(size, size), mode="nearest-exact")
        for b, (x0, y0, x1, y1) in enumerate(windows)
    ]
    return torch.cat(crops, dim=0)


def normalised_images(model: torch.nn.Module, images: torch.Tensor, input_sizes: torch.Tensor) -> torch.Tensor:
    """B×3×S×S uint8 RGB padded images → the model's normalised, zero-padded B×3×S×S input
    (the model family's ``transforms().padded_batch_to_input``: channel order, statistics, zero
    padding outside each image's ``input_size``)."""
    return model.transforms().padded_batch_to_input(images, input_sizes)


@register_method
class SamRefTraining(TrainMethod):
    """Trains ``model.sam_ref`` (GFR + LFR); SAM, the embedding and the decoder stay frozen.

    Options:
        max_clicks, gamma: click counts n ∝ γ^n, 1 ≤ n ≤ max_clicks (SPEC §7.3).
        click_ratio: the next-click distance ratio (1.7).
        error_weight: weight of the BCE terms on both error maps.
        patch_weight: weight of the patch loss.
        boundary_width, boundary_boost: the patch loss's weight map on the 256² patch
            (``1 + boost`` within ``width`` pixels of the object boundary).
        mask_loss: ``"nfl"`` (SPEC §5: NFL + Dice on the global mask, boundary-weighted NFL on
            the patch) or ``"bce"`` (the same with BCE in place of NFL, for a frozen SAM whose
            logits were trained with BCE: the focal terms then reward shrinking its logits).
        patch_dice: weight of a Dice loss of the LFR output on the detail window, added to the
            patch's pixel loss (0: SPEC §5's patch loss, the pixel loss alone). A per-pixel loss
            alone can fall while the patch's IoU falls (confident errors get less confident while
            pixels near the threshold flip); the global mask loss pairs its pixel loss with Dice.
        patch_refined: weight of the same patch loss on the LFR's un-gated prediction M̄ (0: only
            the gated output M, SPEC §5). Through the gate, M̄'s gradient is scaled by σ(Ê), which
            starts near 0 while the error-map loss opens the gate where the base is wrong; this
            term trains M̄ at full strength from the first step.
    """

    name = "sam-ref"
    stages = ("sam-ref",)
    trainable_prefixes = ("sam_ref",)
    needs_image = True
    find_unused_parameters = False
    default_options: dict[str, Any] = {
        "max_clicks": 20,
        "gamma": 0.6,
        "click_ratio": 1.7,
        "error_weight": 1.0,
        "patch_weight": 1.0,
        "boundary_width": 5,
        "boundary_boost": 4.0,
        "mask_loss": "nfl",
        "patch_dice": 0.0,
        "patch_refined": 0.0,
    }

    def __init__(self, model: torch.nn.Module, options: dict[str, Any] | None = None) -> None:
        super().__init__(model, options)
        if self.options["mask_loss"] not in ("nfl", "bce"):
            raise ValueError(f"sam-ref option 'mask_loss' must be 'nfl' or 'bce', got {self.options['mask_loss']!r}")
        for name in ("patch_dice", "patch_refined"):
            if not float(self.options[name]) >= 0:
                raise ValueError(f"sam-ref option {name!r} must be a weight >= 0, got {self.options[name]!r}")
        if not isinstance(model._modules.get("sam_ref"), SamRef):
            raise ValueError("method 'sam-ref' needs model.sam_ref to be a SamRef; attach the 'sam-ref' stage")

    @property
    def refiner(self) -> SamRef:
        return self.model.sam_ref  # type: ignore[return-value]

    def _decode(self, features: dict[str, torch.Tensor], coords: torch.Tensor, labels: torch.Tensor,
                mask_input: torch.Tensor | None) -> torch.Tensor:
        """SAM's low-res logits K×1×h×w as a session produces them: a lone first click (no
        previous logits) takes the multimask output with the highest predicted IoU, every later
        click the single-mask output. The refiners thus train on the SAM masks they will see."""
        with torch.no_grad():
            logits = session_logits(self.model, features, coords, labels, mask_input)
        return logits.detach().float()

    def compute_loss(self, batch: Batch) -> LossOutput:
        if batch.image is None:
            raise RuntimeError("method 'sam-ref' needs the images in the batch (needs_image=True)")
        opts = self.options
        emb = batch.embedding.float()
        target = batch.target.float()
        images = normalised_images(self.model, batch.image, batch.input_size)
        counts = geometric_counts(batch.rng, int(opts["max_clicks"]), float(opts["gamma"]))

        # The click simulator works in the 1024 frame on the low-res logits' grid.
        frame = int(self.model.image_size)
        low_res = 4 * int(self.model.prompt_encoder.image_embedding_size[0])

        def decode(index, coords, labels, mask_input):
            return self._decode(batch.features_at(index, emb[index]), frame_points(coords, frame), labels, mask_input)

        clicks, prev_sam, _ = simulate_iterative_clicks(
            decode, batch.target_grid(low_res), counts, batch.rng, float(opts["click_ratio"])
        )
        clicks.coords = frame_points(clicks.coords, frame)
        per_sample: list[torch.Tensor] = [torch.zeros((), device=emb.device)] * batch.size
        metrics: dict[str, list[torch.Tensor]] = {}
        # Samples with the same click count decode together (no padding points between them).
        for count in sorted(set(counts.tolist())):
            idx = torch.nonzero(counts == count).flatten()
            coords, labels = clicks.coords[idx, :count], clicks.labels[idx, :count]
            prev_logits = prev_sam[idx] if prev_sam is not None and count > 1 else None
            sam_logits = self._decode(batch.features_at(idx, emb[idx]), coords, labels, prev_logits)
            sizes = [tuple(s) for s in batch.input_size[idx].tolist()]
            previous, previous_area = None, None
            if count > 1 and prev_logits is not None:
                with torch.no_grad():
                    before = self.refiner(images[idx], emb[idx], prev_logits, coords[:, :-1],
                                          labels[:, :-1], sizes)
                previous, previous_area = before.logits.detach(), before.error_area
            out = self.refiner(images[idx], emb[idx], sam_logits, coords, labels, sizes,
                               previous_logits=previous, previous_error_area=previous_area)
            loss, parts = self._losses(out, target[idx])
            for k, i in enumerate(idx.tolist()):
                per_sample[i] = loss[k]
            for name, value in parts.items():
                metrics.setdefault(name, []).append(value.detach())
        total = torch.stack(per_sample).mean()
        return LossOutput(total, {k: torch.cat(v).mean() for k, v in metrics.items()})

    def _losses(self, out: SamRefOutput, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-sample loss B and per-sample metrics (each B) of one refinement."""
        opts = self.options
        pixel_loss = losses.normalized_focal_loss if opts["mask_loss"] == "nfl" else losses.bce_loss
        mask_loss = pixel_loss(out.global_logits, target) + losses.dice_loss(out.global_logits, target)
        global_error = losses.bce_loss(out.global_error, error_target(out.sam_logits, target))
        size = self.refiner.config.patch_size
        patch_target = crop_target(target, out.windows, size)
        weight = losses.boundary_weight(patch_target, int(opts["boundary_width"]), float(opts["boundary_boost"]))
        dice_w, refined_w = float(opts["patch_dice"]), float(opts["patch_refined"])

        def patch_mask_loss(logits: torch.Tensor) -> torch.Tensor:
            value = pixel_loss(logits, patch_target, weight=weight)
            return value + dice_w * losses.dice_loss(logits, patch_target) if dice_w > 0 else value

        patch_loss = patch_mask_loss(out.patch_logits)
        if refined_w > 0:
            patch_loss = patch_loss + refined_w * patch_mask_loss(out.patch_refined)
        patch_error = losses.bce_loss(out.patch_error, error_target(out.patch_base, patch_target))
        err_w, patch_w = float(opts["error_weight"]), float(opts["patch_weight"])
        total = mask_loss + err_w * global_error + patch_w * (patch_loss + err_w * patch_error)
        with torch.no_grad():
            parts = {
                "global_mask": mask_loss, "global_error": global_error,
                "patch_mask": patch_loss, "patch_error": patch_error,
                "iou_sam": losses.mask_iou(out.sam_logits, target),
                "iou_global": losses.mask_iou(out.global_logits, target),
                "iou_refined": losses.mask_iou(out.logits, target),
                # inside the detail window: the base the patch is gated with, and the LFR's output
                "iou_patch_base": losses.mask_iou(out.patch_base, patch_target),
                "iou_patch": losses.mask_iou(out.patch_logits, patch_target),
                "used_previous": out.used_previous.float(),
            }
        return total, parts
