"""The contract of one interaction step: what a method's :class:`Stage` sees and returns.

A step turns all prompts so far (and the previous step's result) into a mask::

    ctx = DecodeContext(predictor, clicks, box, prev)    # the image, its features, the prompts
    for stage in stages: stage.before_decode(ctx)        # e.g. swap ctx.embedding, add decoder hooks
    result = ctx.finish(ctx.run_decoder())               # prompt encoder + mask decoder, to image size
    for stage in stages: result = stage.after_decode(ctx, result)   # e.g. refine the final mask

(:class:`clicksam.pipeline.Pipeline` runs it.) Stages read everything from the context — the input
image, the sizes, the prompts in both frames, the encoder's features — and never reach into the
predictor; the context decodes and goes back to the image size through the predictor's one road
(:meth:`clicksam.SamPredictor.decode`, and the transforms' ``postprocess_masks`` that
:meth:`clicksam.SamPredictor.postprocess` uses). A :class:`StepResult` keeps what is needed to continue
(low-res logits, the stages' compact state) and computes its image-size mask on demand.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.prompts import Click

__all__ = ["Click", "DecodeContext", "DecodeResult", "ImageSizer", "Stage", "StepResult"]


@dataclass
class DecodeResult:
    """The decoder's chosen mask for one call, in the padded model frame.

    low_res_logits: 1×1×256×256; score: predicted IoU; mask_token: 1×1×256 single-mask token output;
    index: which of the four mask tokens was chosen.
    """

    low_res_logits: torch.Tensor
    score: float
    mask_token: torch.Tensor
    index: int


@dataclass(frozen=True)
class ImageSizer:
    """Takes logits over the padded model frame back to one image's size (the predictor's transforms,
    with that image's sizes fixed, so a result keeps its own image's size whatever the predictor does next).

    input_size: (h, w) of the resized image in the frame; original_size: (H, W) of the image.
    """

    transforms: Any
    input_size: tuple[int, int]
    original_size: tuple[int, int]

    @torch.no_grad()
    def __call__(self, logits: torch.Tensor) -> np.ndarray:
        """1×1×g×g logits (g = 256 low-res, or the frame's side; any float dtype) -> H×W float32."""
        full = self.transforms.postprocess_masks(logits.float(), self.input_size, self.original_size)
        return full[0, 0].cpu().numpy()


@dataclass
class StepResult:
    """What one interaction step produced: what is needed to continue from it, nothing at image size.

    low_res_logits: 1×1×256×256 SAM logits (padded model frame) fed back as the next ``mask_input``.
    score: predicted IoU of the decoder's mask.
    state: stage-private state (restored exactly by undo/redo); keys are prefixed by the method.
    final_logits: 1×1×g×g logits over the padded model frame of the final mask when a stage replaced
        the decoder's (SAM-REF: its S×S refined logits, shared with its state), or the decoder's own
        logits where the family clamps what it feeds back (SAM 2); None when the final mask comes
        from ``low_res_logits``.
    sizer: takes frame logits to the image size (see :class:`ImageSizer`).
    mask_threshold: the logit threshold of the mask.

    The full-size results are computed on demand, each time they are read: ``logits`` (H×W float32 at
    the original image size) and ``mask`` (H×W bool), so a long history keeps no H×W array.
    """

    low_res_logits: torch.Tensor
    score: float
    state: dict[str, Any] = field(default_factory=dict)
    final_logits: Optional[torch.Tensor] = None
    sizer: Optional[ImageSizer] = field(default=None, repr=False, compare=False)
    mask_threshold: float = 0.0

    @property
    def frame_logits(self) -> torch.Tensor:
        """The logits the final mask comes from (``final_logits``, else ``low_res_logits``)."""
        return self.low_res_logits if self.final_logits is None else self.final_logits

    @property
    def logits(self) -> np.ndarray:
        """H×W float32 logits of the final mask at the original image size (computed now)."""
        if self.sizer is None:
            raise RuntimeError("this StepResult has no sizer: build it with the step's ImageSizer "
                               "(DecodeContext.sizer) to get image-size results")
        return self.sizer(self.frame_logits)

    @property
    def mask(self) -> np.ndarray:
        """H×W bool final mask at the original image size (computed now)."""
        return self.logits > self.mask_threshold


class Stage:
    """A method's part of an interaction step. Subclass it and override one or both hooks.

    A stage is built once per session as ``StageClass(model, module)``: ``module`` is the model's
    submodule under the method spec's ``attribute`` (None for a method without one). State that
    must survive undo/redo goes into ``ctx.state`` (stored with the step), never on the stage.

    A step can be stored and restored later (a restarted server continues an object from its last
    step without replaying its clicks): ``state_to_tensors`` / ``state_from_tensors`` turn the stage's
    entries of a step's state into named tensors and back. The defaults store the tensor entries
    named in ``state_keys``; override them for other values, or for entries that must be
    reattached rather than stored (FocSAM's reference to the encoder embedding).
    """

    state_keys: tuple[str, ...] = ()  # the stage's tensor entries of ``ctx.state``, stored with a step

    def __init__(self, model: nn.Module, module: Optional[nn.Module] = None) -> None:
        self.model = model
        self.module = module

    def before_decode(self, ctx: "DecodeContext") -> None:
        """Change the decoder's inputs: ``ctx.embedding``, ``ctx.multimask``, ``ctx.mask_input``,
        ``ctx.hooks`` (e.g. ``ctx.hooks = ctx.hooks.with_kv_plugin(block, plugin)``)."""

    def after_decode(self, ctx: "DecodeContext", result: StepResult) -> StepResult:
        """Refine the step's result (return a new :class:`StepResult` or ``result``)."""
        return result

    def state_to_tensors(self, state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """This stage's entries of a step's ``state`` as named tensors (what is needed to continue
        from the step; the same tensor object may be shared by many steps). Default: the tensors
        under ``state_keys``."""
        return {key: state[key] for key in self.state_keys if isinstance(state.get(key), torch.Tensor)}

    def state_from_tensors(self, tensors: Mapping[str, torch.Tensor], embedding: torch.Tensor) -> dict[str, Any]:
        """The inverse of :meth:`state_to_tensors`: state entries from ``tensors`` (already on the
        model's device; names missing when the step was made without this stage). ``embedding`` is
        the encoder's image embedding of the image the step belongs to. Default: ``state_keys``."""
        return {key: tensors[key] for key in self.state_keys if key in tensors}


class DecodeContext:
    """Everything a stage may read or change during one step.

    Read-only for stages: ``model``, ``image`` (1×3×S×S model input, or None when the predictor
    only has an embedding), ``features`` (the encoder's feature bundle), ``encoder_embedding``
    (its image embedding), ``original_size`` (H, W), ``input_size`` (h, w) in the model frame,
    ``clicks`` / ``box`` (original-image pixels), ``points`` / ``boxes`` (the same prompts as
    model-frame tensors), ``prev`` (the previous step's result or None), ``sizer`` (frame logits to
    the image size).
    Changeable: ``embedding`` (what the decoder uses), ``multimask``, ``mask_input``, ``hooks``,
    ``state`` (stage state of this step, starting as a copy of the previous step's).
    """

    def __init__(self, predictor, clicks: Sequence[Click], box: Optional[Sequence[float]],
                 prev: Optional[StepResult]) -> None:
        if not predictor.is_image_set:
            raise RuntimeError("no image is set; call predictor.set_image(image) before adding prompts")
        self._predictor = predictor
        self.model = predictor.model
        self.image: Optional[torch.Tensor] = predictor.input_image
        self.features: dict[str, torch.Tensor] = dict(predictor.image_features)
        self.encoder_embedding: torch.Tensor = predictor.features
        self.embedding: torch.Tensor = self.encoder_embedding
        self.original_size: tuple[int, int] = predictor.original_size
        self.input_size: tuple[int, int] = predictor.input_size
        self.sizer = ImageSizer(predictor.transforms, self.input_size, self.original_size)
        self.clicks = tuple(clicks)
        self.box = None if box is None else tuple(float(v) for v in box)
        self.points, self.boxes = self.prompts()
        self.prev = prev
        self.state: dict[str, Any] = dict(prev.state) if prev is not None else {}
        self.mask_input: Optional[torch.Tensor] = None if prev is None else prev.low_res_logits
        # SAM's habit: three candidates for a lone first click, keep the best predicted IoU
        self.multimask = len(self.clicks) == 1 and self.box is None and prev is None
        self.hooks: DecoderHooks = NO_HOOKS

    def prompts(self, clicks: Optional[Sequence[Click]] = None) -> tuple:
        """Clicks (default: this step's) and the step's box as model-frame tensors:
        ``((coords 1×N×2, labels 1×N) or None, boxes 1×4 or None)``."""
        clicks = self.clicks if clicks is None else tuple(clicks)
        coords = labels = None
        if clicks:
            coords = np.array([[c.x, c.y] for c in clicks], dtype=np.float32)
            labels = np.array([1 if c.positive else 0 for c in clicks], dtype=np.int64)
        box = None if self.box is None else np.array(self.box, dtype=np.float32)
        return self._predictor.model_prompts(coords, labels, box)

    @torch.no_grad()
    def run_decoder(
        self,
        embedding: Optional[torch.Tensor] = None,
        clicks: Optional[Sequence[Click]] = None,
        mask_input: Optional[torch.Tensor] = ...,  # type: ignore[assignment]
        multimask: Optional[bool] = None,
    ) -> DecodeResult:
        """Run the prompt encoder and mask decoder once, with this step's hooks; by default on
        this step's embedding, prompts, mask input and multimask choice."""
        points, boxes = (self.points, self.boxes) if clicks is None else self.prompts(clicks)
        out = self._predictor.decode(
            points, boxes,
            self.mask_input if mask_input is ... else mask_input,
            self.multimask if multimask is None else multimask,
            embedding=self.embedding if embedding is None else embedding,
            hooks=self.hooks,
        )
        best = int(out.iou_predictions[0].argmax())
        index = best + 1 if out.low_res_logits.shape[1] > 1 else 0
        return DecodeResult(
            low_res_logits=out.low_res_logits[:, best : best + 1],
            score=float(out.iou_predictions[0, best]),
            mask_token=out.mask_tokens[:, :1],
            index=index,
        )

    def to_image_size(self, logits: torch.Tensor) -> np.ndarray:
        """1×1×g×g logits over the padded model frame (g = 256 low-res, or the frame's side) ->
        H×W float32 logits at the original image size."""
        return self.sizer(logits)

    def result(self, low_res_logits: torch.Tensor, score: float,
               final_logits: Optional[torch.Tensor] = None) -> StepResult:
        """A :class:`StepResult` of this step with its state (``final_logits``: see StepResult)."""
        return StepResult(low_res_logits, score, self.state, final_logits, self.sizer, self.model.mask_threshold)

    def finish(self, decoded: DecodeResult) -> StepResult:
        """The step's result for the decoder's chosen mask. The low-res logits kept for the next step
        are the family's output form (SAM 2's clamped to ±32, as its predictor hands them back); where
        that changes them, the mask comes from the decoder's own logits (``final_logits``)."""
        low_res = self._predictor.output_low_res(decoded.low_res_logits)
        unchanged = low_res is decoded.low_res_logits or torch.equal(low_res, decoded.low_res_logits)
        return self.result(low_res, decoded.score, final_logits=None if unchanged else decoded.low_res_logits)
