"""``SamRefStage``: SAM-REF in the interaction pipeline (runs after the decoder on every click)."""
from __future__ import annotations

import time
from typing import Any, Mapping, Optional

import torch
from torch import nn

from clicksam.interaction import DecodeContext, Stage, StepResult

from .model import SamRef
from .refiner import RefinerContext

# Keys of this stage's entries in ``StepResult.state`` (restored by undo/redo with the step).
STATE_LOGITS = "sam_ref.logits"          # 1×1×S×S final logits of the step (padded frame), = final_logits
STATE_ERROR_AREA = "sam_ref.error_area"  # int, its area inside the image (the selector's input)
STATE_WINDOW = "sam_ref.window"          # (x0, y0, x1, y1) detail window of the step
STATE_USED_PREVIOUS = "sam_ref.used_previous"  # bool, the selector's choice


class SamRefStage(Stage):
    """Refines the decoder's mask with ``model.sam_ref`` after every decode.

    Works under any other stage (``stable-sam``, ``focsam``): it reads the decoder's chosen
    low-res logits and always uses the *encoder's* embedding (``ctx.encoder_embedding``), the one
    the refiners are trained with, even when FocSAM decodes on a refocused embedding.
    SAM's own low-res logits stay the next click's ``mask_input`` (SAM runs unchanged); the
    refined S×S logits become the step's ``final_logits`` (its ``logits``/``mask`` at the image
    size come from them). The final logits (the same tensor as ``final_logits``) and the error
    area travel in the step's ``state``, so undo/redo, several objects and a stored step need
    nothing else.
    The GFR's image/embedding features are computed once per image and reused on each click.
    """

    def __init__(self, model: nn.Module, module: Optional[nn.Module] = None) -> None:
        super().__init__(model, module)
        from .onnx import OnnxSamRef  # the stand-in on runtime="onnx"

        if not isinstance(self.module, (SamRef, OnnxSamRef)):
            raise RuntimeError(
                "the 'sam-ref' stage needs model.sam_ref; build the model with "
                "build_sam(..., methods=['sam-ref']) or load a sam-ref method file"
            )
        self._cached_for: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self._cached_context: Optional[RefinerContext] = None
        # wall seconds of the last step: "context" (first click on an image only), "gfr",
        # "lfr", "total" (the whole stage, including the resize to the original size)
        self.last_timings: dict[str, float] = {}

    def clear_cache(self) -> None:
        """Forget the cached GFR features (call after changing the refiner's weights)."""
        self._cached_for = None
        self._cached_context = None

    def _context(self, image: torch.Tensor, embedding: torch.Tensor) -> RefinerContext:
        cached, context = self._cached_for, self._cached_context
        if context is None or cached is None or cached[0] is not image or cached[1] is not embedding:
            start = time.perf_counter()
            context = self.module.global_context(image, embedding)
            self._cached_for, self._cached_context = (image, embedding), context
            self.last_timings["context"] = time.perf_counter() - start
        return context

    @torch.no_grad()
    def after_decode(self, ctx: DecodeContext, result: StepResult) -> StepResult:
        start = time.perf_counter()
        self.last_timings = {}
        image = ctx.image
        if image is None:
            raise RuntimeError(
                "SAM-REF refines with the image pixels, but the predictor only has an embedding "
                "(set_image_embedding); call predictor.set_image(image) instead (with an "
                "EmbeddingCache the encoder still runs only once per image)"
            )
        module = self.module  # the SamRef, or its graphs on runtime="onnx"
        embedding = ctx.encoder_embedding
        if module.config.image_size != image.shape[-1]:
            raise RuntimeError(
                f"model.sam_ref works in a {module.config.image_size} frame but the model's is "
                f"{image.shape[-1]}; attach SAM-REF with a matching SamRefConfig(image_size=...)"
            )
        coords, labels = (None, None) if ctx.points is None else ctx.points
        state: dict[str, Any] = dict(ctx.state)
        prev_logits = state.get(STATE_LOGITS) if ctx.prev is not None else None
        prev_area = state.get(STATE_ERROR_AREA) if ctx.prev is not None else None
        device = image.device
        out = module(
            image, embedding, result.low_res_logits.to(device), coords, labels, ctx.input_size,
            previous_logits=None if prev_logits is None else prev_logits.to(device, torch.float32),
            previous_error_area=None if prev_area is None else torch.tensor([prev_area], device=device),
            context=self._context(image, embedding), timings=self.last_timings,
        )
        final = out.logits
        state.update({
            STATE_LOGITS: final,
            STATE_ERROR_AREA: int(out.error_area[0]),
            STATE_WINDOW: tuple(int(v) for v in out.windows[0]),
            STATE_USED_PREVIOUS: bool(out.used_previous[0]),
        })
        ctx.state = state
        self.last_timings["total"] = time.perf_counter() - start
        if torch.equal(out.logits, out.sam_logits):
            # the refiners changed nothing (e.g. untrained): the step keeps the decoder's own result,
            # post-processed as the model family does it (SAM 2 resizes its low-res logits straight
            # to the image; SAM-REF's full frame in between would interpolate twice)
            return ctx.result(result.low_res_logits, result.score, final_logits=result.final_logits)
        return ctx.result(result.low_res_logits, result.score, final_logits=final)

    def state_to_tensors(self, state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The final logits and the selector's numbers as small tensors."""
        if STATE_LOGITS not in state:
            return {}
        return {STATE_LOGITS: state[STATE_LOGITS],
                STATE_ERROR_AREA: torch.tensor(int(state[STATE_ERROR_AREA]), dtype=torch.int64),
                STATE_WINDOW: torch.tensor([int(v) for v in state[STATE_WINDOW]], dtype=torch.int64),
                STATE_USED_PREVIOUS: torch.tensor(bool(state[STATE_USED_PREVIOUS]))}

    def state_from_tensors(self, tensors: Mapping[str, torch.Tensor], embedding: torch.Tensor) -> dict[str, Any]:
        if STATE_LOGITS not in tensors:
            return {}
        return {STATE_LOGITS: tensors[STATE_LOGITS],
                STATE_ERROR_AREA: int(tensors[STATE_ERROR_AREA]),
                STATE_WINDOW: tuple(int(v) for v in tensors[STATE_WINDOW].tolist()),
                STATE_USED_PREVIOUS: bool(tensors[STATE_USED_PREVIOUS])}
