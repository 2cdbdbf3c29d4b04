"""One interaction step: prompts in, a mask out, through the stages of a method.

```
ctx = DecodeContext(...)                   # the embedding, the prompts, the previous step
for stage in stages: stage.before_decode(ctx)
result = ctx.finish(ctx.run_decoder())     # prompt encoder + mask decoder (+ Stable-SAM), to image size
for stage in stages: result = stage.after_decode(ctx, result)
```
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch

from clicksam.methods import STAGE_ATTRIBUTES, canonical_method, parse_method, stage_class


@dataclass(frozen=True)
class Click:
    """A click at pixel (x, y) of the original image; ``positive`` False for a background click."""

    x: float
    y: float
    positive: bool = True


@dataclass
class DecodeResult:
    """The decoder's chosen mask for one call, in the padded 1024 frame.

    low_res_logits: 1×1×256×256; score: predicted IoU; mask_token: 1×1×256 single-mask token output;
    index: which of the four mask tokens was chosen.
    """

    low_res_logits: torch.Tensor
    score: float
    mask_token: torch.Tensor
    index: int


@dataclass
class StepResult:
    """What one interaction step produced.

    low_res_logits: 1×1×256×256 SAM logits (padded 1024 frame) fed back as the next ``mask_input``.
    logits: H×W float32 logits of the final mask at the original image size (threshold 0).
    mask: H×W bool final mask.
    score: predicted IoU of the decoder's mask.
    state: stage-private state (restored exactly by undo/redo).
    """

    low_res_logits: torch.Tensor
    logits: np.ndarray
    mask: np.ndarray
    score: float
    state: dict[str, Any] = field(default_factory=dict)


class Stage:
    """A method stage. Subclasses set ``name`` and ``attribute`` and override the hooks."""

    name: str = ""
    attribute: str = ""

    def __init__(self, model) -> None:
        self.model = model
        self.module = model.stage(self.attribute) if self.attribute else None

    def before_decode(self, ctx: "DecodeContext") -> None:
        """Change the decoder's inputs (``ctx.embedding``, ``ctx.multimask``, ``ctx.use_stable_sam``)."""

    def after_decode(self, ctx: "DecodeContext", result: StepResult) -> StepResult:
        """Refine the step's result."""
        return result


class DecodeContext:
    """Everything a stage may read or change during one step."""

    def __init__(self, predictor, clicks: Sequence[Click], box: Optional[Sequence[float]], prev: Optional[StepResult]) -> None:
        if not predictor.is_image_set:
            raise RuntimeError("no image is set; call predictor.set_image(image) before adding prompts")
        self.predictor = predictor
        self.model = predictor.model
        self.embedding: torch.Tensor = predictor.features
        self.clicks = tuple(clicks)
        self.box = None if box is None else tuple(float(v) for v in box)
        self.prev = prev
        self.state: dict[str, Any] = dict(prev.state) if prev is not None else {}
        self.mask_input: Optional[torch.Tensor] = None if prev is None else prev.low_res_logits
        # SAM's habit: three candidates for a lone first click, keep the best predicted IoU
        self.multimask = len(self.clicks) == 1 and self.box is None and prev is None
        self.use_stable_sam = False

    def prompts(self, clicks: Optional[Sequence[Click]] = None) -> tuple:
        """The prompts as 1024-frame tensors: (points or None, boxes or None)."""
        clicks = self.clicks if clicks is None else clicks
        transform, device = self.predictor.transform, self.predictor.device
        size = self.predictor.original_size
        points = None
        if clicks:
            coords = np.array([[c.x, c.y] for c in clicks], dtype=np.float32)
            coords = transform.apply_coords(coords, size)
            labels = np.array([1 if c.positive else 0 for c in clicks], dtype=np.float32)
            points = (torch.as_tensor(coords, device=device)[None], torch.as_tensor(labels, device=device)[None])
        boxes = None
        if self.box is not None:
            boxes = torch.as_tensor(transform.apply_boxes(np.array(self.box, dtype=np.float32), size), device=device)
        return points, boxes

    @torch.no_grad()
    def run_decoder(
        self,
        embedding: Optional[torch.Tensor] = None,
        clicks: Optional[Sequence[Click]] = None,
        mask_input: Optional[torch.Tensor] = ...,  # type: ignore[assignment]
        multimask: Optional[bool] = None,
    ) -> DecodeResult:
        """Run the prompt encoder and mask decoder once; by default on this step's inputs."""
        points, boxes = self.prompts(clicks)
        out = self.model.decode(
            self.embedding if embedding is None else embedding,
            points=points,
            boxes=boxes,
            mask_input=self.mask_input if mask_input is ... else mask_input,
            multimask_output=self.multimask if multimask is None else multimask,
            use_stable_sam=self.use_stable_sam,
        )
        best = int(out.iou_predictions[0].argmax())
        index = best + 1 if out.low_res_logits.shape[1] > 1 else 0
        return DecodeResult(
            low_res_logits=out.low_res_logits[:, best : best + 1],
            score=float(out.iou_predictions[0, best]),
            mask_token=out.mask_tokens[:, :1],
            index=index,
        )

    @torch.no_grad()
    def finish(self, decoded: DecodeResult) -> StepResult:
        """Upsample the decoder's chosen mask to the original image size."""
        p = self.predictor
        logits = self.model.postprocess_masks(decoded.low_res_logits, p.input_size, p.original_size)[0, 0]
        logits_np = logits.float().cpu().numpy()
        return StepResult(decoded.low_res_logits, logits_np, logits_np > self.model.mask_threshold, decoded.score, self.state)


class Pipeline:
    """Runs the stages of ``method`` around SAM's decoder for one predictor."""

    def __init__(self, predictor, method: str = "sam") -> None:
        self.predictor = predictor
        self.stage_names = parse_method(method)
        self.method = canonical_method(self.stage_names)
        model = predictor.model
        for name in self.stage_names:
            if model.stage(STAGE_ATTRIBUTES[name]) is None:
                raise ValueError(
                    f"method {self.method!r} needs the {name!r} stage, which this model does not have; "
                    f"build it with build_sam(..., methods=[{name!r}]) or load a {name} method file"
                )
        self.stages: list[Stage] = [stage_class(n)(model) for n in self.stage_names]
        for stage in self.stages:
            if stage.module is not None and not getattr(stage.module, "clicksam_trained", False):
                warnings.warn(
                    f"the {stage.name!r} stage has no trained weights; results equal its untrained initialisation. "
                    "Load a method file with build_sam(..., checkpoint=[base, method_file]).",
                    stacklevel=2,
                )

    def step(self, clicks: Sequence[Click], box: Optional[Sequence[float]] = None, prev: Optional[StepResult] = None) -> StepResult:
        """One prediction from all prompts so far and the previous step's result."""
        if not clicks and box is None:
            raise ValueError("a step needs at least one click or a box")
        ctx = DecodeContext(self.predictor, clicks, box, prev)
        for stage in self.stages:
            stage.before_decode(ctx)
        result = ctx.finish(ctx.run_decoder())
        for stage in self.stages:
            result = stage.after_decode(ctx, result)
        return result
