"""``clicksam train --method stable-sam``: Stable-SAM's robust training strategy (RTS, SPEC §3).

Only ``model.stable_sam`` trains; SAM (encoder, prompt encoder, decoder) is frozen. Each sample
gets one prompt of mixed quality, drawn from its own random stream:

- a clean box: the object's tight box;
- a noisy box: the tight box with its centre shifted by U(-s, s)·(w/2, h/2) and its size changed
  by U(-s, s)·(w, h), clipped to the image (it may cut the object); s = ``box_noise`` (0.5);
- 1-5 positive points, uniform over the object (``min_points``..``max_points``);

with probabilities ``clean_box_prob`` / ``noisy_box_prob`` / ``point_prob`` (decision: a third
each; the paper only says "mixed"). The target is always the whole object; the loss is BCE + Dice
on the single-mask output's low-res logits. The paper trains one epoch: set the run's ``steps``
to ⌈number of training objects / batch_size⌉ (the trainer counts steps, not epochs).

Every sample draws the same random numbers whatever its prompt type, and samples are decoded in
groups that need no padding (all boxes together, points grouped by count), so a sample's loss is
independent of the rest of its batch (the trainer's rule for exact resumption and DDP).
"""
from __future__ import annotations

from typing import Any

import torch

from clicksam.train import losses
from clicksam.train.method import Batch, LossOutput, TrainMethod, register_method
from clicksam.train.prompts import frame_points, noisy_boxes, object_boxes, random_positive_points

from .plugin import StableSamPlugin, decoder_hooks

CLEAN_BOX, NOISY_BOX, POINTS = 0, 1, 2


def point_cells(target: torch.Tensor, size: int) -> torch.Tensor:
    """Cells of a size×size grid over a B×1×S×S target (1/0/-1) whose centre pixels are all object:
    B×1×size×size float, 1 where a positive point may go, 0 elsewhere (a point at a cell centre
    then always lands on the object, even on thin parts that cover less than the whole cell)."""
    s = target.shape[-1] // size
    if s * size != target.shape[-1]:
        raise ValueError(f"the target side {target.shape[-1]} must be a multiple of the grid side {size}")
    lo, hi = (s - 1) // 2, s // 2
    centre = torch.ones_like(target[:, :, ::s, ::s], dtype=torch.bool)
    for dy in {lo, hi}:
        for dx in {lo, hi}:
            centre &= target[:, :, dy::s, dx::s] == 1
    return centre.float()


@register_method
class StableSamTraining(TrainMethod):
    """Trains ``model.stable_sam`` (DSP + DRP) with RTS; see the module docstring.

    Options:
        clean_box_prob, noisy_box_prob, point_prob: the prompt mix (normalised to sum to 1).
        box_noise: s of the noisy boxes, in [0, 1).
        min_points, max_points: the point count range.
        dice_weight: weight of the Dice term (BCE has weight 1).
    """

    name = "stable-sam"
    stages = ("stable-sam",)
    trainable_prefixes = ("stable_sam",)
    find_unused_parameters = False
    default_options: dict[str, Any] = {
        "clean_box_prob": 1 / 3,
        "noisy_box_prob": 1 / 3,
        "point_prob": 1 / 3,
        "box_noise": 0.5,
        "min_points": 1,
        "max_points": 5,
        "dice_weight": 1.0,
    }

    def __init__(self, model: torch.nn.Module, options: dict[str, Any] | None = None) -> None:
        super().__init__(model, options)
        if not isinstance(model._modules.get("stable_sam"), StableSamPlugin):
            raise ValueError("method 'stable-sam' needs model.stable_sam to be a StableSamPlugin; attach the 'stable-sam' stage")
        opts = self.options
        probs = [float(opts[k]) for k in ("clean_box_prob", "noisy_box_prob", "point_prob")]
        if min(probs) < 0 or sum(probs) <= 0:
            raise ValueError(f"method 'stable-sam': prompt probabilities must be >= 0 and not all 0, got {probs}")
        if not 0 <= float(opts["box_noise"]) < 1:
            raise ValueError(f"method 'stable-sam': box_noise must be in [0, 1), got {opts['box_noise']}")
        if not 1 <= int(opts["min_points"]) <= int(opts["max_points"]):
            raise ValueError(f"method 'stable-sam': need 1 <= min_points <= max_points, got "
                             f"{opts['min_points']}, {opts['max_points']}")
        self.prompt_probs = probs

    @property
    def plugin(self) -> StableSamPlugin:
        return self.model.stable_sam  # type: ignore[return-value]

    def draw_prompts(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The prompts of a batch, in the model's frame.

        Returns a dict with ``kind`` B long (0 clean box, 1 noisy box, 2 points), ``clean`` and
        ``noisy`` boxes B×4 XYXY, ``coords`` B×P×2 (x, y) and ``labels`` B×P (1, or -1 padding,
        valid points first), P = ``max_points``.
        """
        opts = self.options
        frame = int(self.model.image_size)
        low_res = 4 * int(self.model.prompt_encoder.image_embedding_size[0])
        kind = batch.rng.choice(self.prompt_probs, [CLEAN_BOX, NOISY_BOX, POINTS])
        clean = object_boxes(batch.target, frame=frame)
        noisy = noisy_boxes(clean, batch.input_size, batch.rng, float(opts["box_noise"]))
        coords, labels = random_positive_points(point_cells(batch.target, low_res), batch.rng,
                                                int(opts["min_points"]), int(opts["max_points"]))
        return {"kind": kind, "clean": clean, "noisy": noisy, "coords": frame_points(coords, frame), "labels": labels}

    def compute_loss(self, batch: Batch) -> LossOutput:
        emb = batch.embedding.float()
        low_res = 4 * int(self.model.prompt_encoder.image_embedding_size[0])
        target = batch.target_grid(low_res)
        prompts = self.draw_prompts(batch)
        kind, labels = prompts["kind"], prompts["labels"]
        boxes = torch.where((kind == CLEAN_BOX)[:, None], prompts["clean"], prompts["noisy"])
        counts = (labels >= 0).sum(1)
        groups: list[tuple[torch.Tensor, dict[str, Any]]] = []
        box_idx = torch.nonzero(kind != POINTS).flatten()
        if box_idx.numel():
            groups.append((box_idx, {"boxes": boxes[box_idx]}))
        for count in sorted(set(counts[kind == POINTS].tolist())):
            idx = torch.nonzero((kind == POINTS) & (counts == count)).flatten()
            n = max(int(count), 1)  # an object too small for any point keeps one padding point
            groups.append((idx, {"points": (prompts["coords"][idx, :n], labels[idx, :n])}))

        per_sample = [torch.zeros((), device=emb.device)] * batch.size
        bce = torch.zeros(batch.size, device=emb.device)
        dice = torch.zeros(batch.size, device=emb.device)
        ious = torch.zeros(batch.size, device=emb.device)
        alpha1 = torch.zeros(batch.size, device=emb.device)
        hooks = decoder_hooks(self.plugin)
        for idx, prompt in groups:
            out = self.model.decode(batch.features_at(idx, emb[idx]), multimask_output=False, hooks=hooks, **prompt)
            logits, t = out.low_res_logits, target[idx]
            b_loss, d_loss = losses.bce_loss(logits, t), losses.dice_loss(logits, t)
            loss = b_loss + float(self.options["dice_weight"]) * d_loss
            for k, i in enumerate(idx.tolist()):
                per_sample[i] = loss[k]
            bce[idx], dice[idx] = b_loss.detach().float(), d_loss.detach().float()
            ious[idx] = losses.mask_iou(logits, t).float()
            if self.plugin.last_alpha is not None:
                alpha1[idx] = self.plugin.last_alpha[:, 0].float()
        metrics = {"bce": bce.mean(), "dice": dice.mean(), "iou": ious.mean(), "alpha1": alpha1.mean()}
        return LossOutput(torch.stack(per_sample).mean(), metrics)
