"""The experiments' base recipe as a training method: all of SAM trained from scratch
(``sam-scratch``), for the small configs of ``common.small_config``.

Every parameter trains (image encoder, prompt encoder, mask decoder); the trainer hands each
batch's images (``trains_encoder``) and the method encodes them with gradient. SAM's prompt mix
per sample (drawn from its own stream): jittered boxes (single-mask output), 1-5 random positive
points (for one point the loss of the best of the three masks plus that of the single-mask token,
which FocSAM decodes click 1 with; the single mask for more), and simulated iterative clicks with
the previous low-res logits fed back as ``mask_input`` (SPEC §7.3); BCE + Dice on the low-res
logits plus the IoU head's MSE.

Why the image embedding is faded in over the first ``ramp_steps`` steps (``emb · min(1, step /
ramp_steps)``): a decoder trained from scratch must first learn to *locate* the prompt, by matching
the prompt tokens' positional encoding against the dense positional encoding added to the image
keys. The embedding of a random, still-changing encoder has the same magnitude as that encoding
and drowns it, while BCE on objects covering ~3 % of the frame drives every logit negative, where
the Dice gradient vanishes: the model sits at "predict nothing" (loss ≈ 1.1; 700 steps at lr 1e-3
without leaving it, in an earlier session's diagnostics). With the fade, a warm-up and a lower peak
learning rate the prompt → location mapping forms first (0.46 box mIoU on training scenes after
350 steps instead of 0.0). Trained on 400 scenes the base overfit them (box mIoU 0.55 on training
scenes, 0.36 held out), hence 2000 scenes.
"""
from __future__ import annotations

import torch

from clicksam.methods.stable_sam.training import point_cells
from clicksam.train import losses
from clicksam.train.method import Batch, LossOutput, TrainMethod, register_method
from clicksam.train.prompts import (frame_points, geometric_counts, noisy_boxes, object_boxes, random_positive_points,
                                    session_logits, simulate_iterative_clicks)


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + Dice per sample (B)."""
    return losses.bce_loss(logits, target) + losses.dice_loss(logits, target)


def decode_loss(model, emb: torch.Tensor, target: torch.Tensor, points=None, boxes=None,
                mask_input=None) -> torch.Tensor:
    """Per-sample loss of one prompt group: a lone point gets the three-mask output and the loss
    of its best mask (SAM's ambiguity-aware loss) *plus* the loss of the single-mask token on the
    whole object; everything else the single-mask token alone; plus the IoU head's MSE."""
    multimask = boxes is None and mask_input is None and points is not None and points[0].shape[1] == 1
    out = model.decode(emb, points, boxes=boxes, mask_input=mask_input, multimask_output=multimask)
    k = out.low_res_logits.shape[1]
    each = torch.stack([mask_loss(out.low_res_logits[:, j:j + 1], target) for j in range(k)], 1)
    iou_mse = torch.stack([losses.iou_prediction_loss(out.iou_predictions[:, j], out.low_res_logits[:, j:j + 1], target)
                           for j in range(k)], 1).mean(1)
    loss = each.min(1).values + iou_mse
    if multimask:  # the same decoder call also ran the single-mask token (output 0)
        single = out.all_low_res_logits[:, :1]
        loss = loss + mask_loss(single, target) + losses.iou_prediction_loss(out.all_iou_predictions[:, 0], single, target)
    return loss


@register_method
class ScratchSamTraining(TrainMethod):
    """Trains all of SAM from scratch (see the module docstring).

    Options: ``box_prob`` (0.35) and ``points_prob`` (0.25), the shares of box and random-point
    samples (iterative clicks otherwise); ``box_noise`` (0.1); ``max_clicks`` (6, iterative clicks
    n ∝ 0.6^n); ``ramp_steps`` (400, the embedding fade-in).
    """

    name = "sam-scratch"
    trainable_prefixes = ("image_encoder", "prompt_encoder", "mask_decoder")
    trains_encoder = True
    default_options = {"box_prob": 0.35, "points_prob": 0.25, "box_noise": 0.1, "max_clicks": 6, "ramp_steps": 400}

    def compute_loss(self, batch: Batch) -> LossOutput:
        model, opts = self.model, self.options
        frame = model.image_size
        low_res = 4 * model.prompt_encoder.image_embedding_size[0]
        emb = model.encode(model.transforms().padded_batch_to_input(batch.image, batch.input_size))
        emb = emb * min(1.0, batch.step / int(opts["ramp_steps"]))  # the embedding fade-in
        full, target = batch.target.float(), batch.target_grid(low_res)
        kind = batch.rng.uniform().cpu()
        is_box = kind < opts["box_prob"]
        is_points = (kind >= opts["box_prob"]) & (kind < opts["box_prob"] + opts["points_prob"])
        groups = {"box": is_box, "points": is_points, "clicks": ~(is_box | is_points)}
        total = torch.zeros((), device=emb.device)
        metrics = {}
        for name, members in groups.items():
            idx = torch.nonzero(members).flatten().to(emb.device)
            if idx.numel():
                loss = getattr(self, f"_{name}")(emb[idx], full[idx], target[idx], batch.input_size[idx],
                                                 batch.rng.subset(idx.tolist()), frame, low_res)
                total = total + loss.sum()
                metrics[f"loss_{name}"] = loss.mean().detach()
        return LossOutput(total / batch.size, metrics)

    def _box(self, emb, full, target, sizes, rng, frame, low_res) -> torch.Tensor:
        boxes = noisy_boxes(object_boxes(full, frame), sizes, rng, float(self.options["box_noise"]))
        return decode_loss(self.model, emb, target, boxes=boxes)

    def _points(self, emb, full, target, sizes, rng, frame, low_res) -> torch.Tensor:
        coords, labels = random_positive_points(point_cells(full, low_res), rng, 1, 5)
        counts = (labels >= 0).sum(1).clamp(min=1)
        loss = torch.zeros(len(counts), device=emb.device)
        for c in sorted(set(counts.tolist())):
            sel = torch.nonzero(counts == c).flatten()
            points = (frame_points(coords[sel, :c], frame), labels[sel, :c])
            loss[sel] = decode_loss(self.model, emb[sel], target[sel], points=points)
        return loss

    def _clicks(self, emb, full, target, sizes, rng, frame, low_res) -> torch.Tensor:
        counts = geometric_counts(rng, int(self.options["max_clicks"]), 0.6)
        frozen = emb.detach()

        def decode(index, coords, labels, mask_input):  # as a session decodes (best of three at click 1)
            return session_logits(self.model, frozen[index], frame_points(coords, frame), labels, mask_input)

        clicks, prev, _ = simulate_iterative_clicks(decode, target, counts, rng)
        loss = torch.zeros(len(counts), device=emb.device)
        for c in sorted(set(counts.tolist())):
            sel = torch.nonzero(counts == c).flatten()
            points = (frame_points(clicks.coords[sel, :c], frame), clicks.labels[sel, :c])
            loss[sel] = decode_loss(self.model, emb[sel], target[sel], points=points,
                                    mask_input=prev[sel] if c > 1 else None)
        return loss
