"""``Pipeline``: the stages of a method string around SAM's decoder, one interaction step at a time.

The method names come from the registry (:mod:`clicksam.methods`); the step follows the contract of
:mod:`clicksam.interaction`. Untrained stages are checked here, where a step is built, so every user
of a step (session, evaluation, server) gets the same rule: an untrained stage declared the identity
warns once, one declared not to be is refused unless ``allow_untrained=True``.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Optional, Sequence

import torch

from clicksam.interaction import DecodeContext, ImageSizer, Stage, StepResult
from clicksam.methods import (UNTRAINED_REFUSE, MethodSpec, canonical_method, get_spec, is_trained,
                              missing_weights, parse_method, resolve, stage_module)
from clicksam.prompts import Click

__all__ = ["Pipeline", "stage_problem", "STATE_PREFIX"]

STATE_PREFIX = "state."  # names of the stages' tensors among a stored step's tensors


def stage_problem(model, spec: MethodSpec, allow_untrained: bool = False) -> Optional[str]:
    """Why ``model`` cannot run method ``spec`` (None when it can): the method does not apply to the
    model's family (its spec's ``families``), its module is missing, or it is untrained while the
    spec refuses an untrained stage (unless ``allow_untrained``)."""
    family = getattr(model, "family", "sam")
    if family not in spec.families:
        return (f"the {spec.name!r} method applies to {', '.join(spec.families)} models, not to this {family} "
                f"model ({getattr(model, 'model_name', '?')})")
    if not spec.attribute:
        return None
    module = stage_module(model, spec)
    if module is None:
        return (f"the {spec.name!r} stage is not attached to this model; build it with "
                f"build_sam(..., methods=[{spec.name!r}]) or load a {spec.name} method file")
    if spec.untrained == UNTRAINED_REFUSE and not is_trained(module) and not allow_untrained:
        return missing_weights(spec)
    return None


class Pipeline:
    """Runs the stages of ``method`` around SAM's decoder for one predictor.

    Args:
        predictor: a :class:`clicksam.SamPredictor`.
        method: ``"sam"`` or a ``+``-joined combination of registered methods.
        allow_untrained: run stages that are refused untrained anyway (tests, benchmarks).
    Raises:
        ValueError: unknown method, stage not attached, or untrained stage that is refused.
    """

    def __init__(self, predictor, method: str = "sam", allow_untrained: bool = False) -> None:
        self.predictor = predictor
        self.stage_names = parse_method(method)
        self.method = canonical_method(self.stage_names)
        model = predictor.model
        self.specs: list[MethodSpec] = [get_spec(name) for name in self.stage_names]
        for spec in self.specs:
            problem = stage_problem(model, spec, allow_untrained)
            if problem is not None:
                raise ValueError(f"method {self.method!r}: {problem}")
        self.stages: list[Stage] = [resolve(spec.stage)(model, stage_module(model, spec)) for spec in self.specs]
        for spec in self.specs:
            module = stage_module(model, spec)
            if module is not None and not is_trained(module):
                warnings.warn(
                    f"the {spec.name!r} stage has no trained weights; results equal its untrained initialisation. "
                    "Load a method file with build_sam(..., checkpoint=[base, method_file]).",
                    stacklevel=2,
                )

    def step(self, clicks: Sequence[Click], box: Optional[Sequence[float]] = None,
             prev: Optional[StepResult] = None) -> StepResult:
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

    # -- stored steps -----------------------------------------------------------------------------
    def result_tensors(self, result: StepResult) -> dict[str, torch.Tensor]:
        """What is needed to continue from ``result``, as named tensors (nothing at image size):
        ``low_res_logits`` (1×1×256×256), ``score`` (0-d float64), ``final_logits`` when a stage
        replaced the decoder's mask, and each stage's state (:meth:`Stage.state_to_tensors`) under
        ``state.<key>``. The same tensor object appears in many steps' tensors when they share it."""
        tensors = {"low_res_logits": result.low_res_logits,
                   "score": torch.tensor(float(result.score), dtype=torch.float64)}
        if result.final_logits is not None:
            tensors["final_logits"] = result.final_logits
        for stage in self.stages:
            for key, value in stage.state_to_tensors(result.state).items():
                tensors[STATE_PREFIX + key] = value
        return tensors

    def result_from_tensors(self, tensors: Mapping[str, torch.Tensor]) -> StepResult:
        """The inverse of :meth:`result_tensors` on the predictor's current image (which the tensors
        must have been computed on): no decode. Stage entries of stages this pipeline does not run
        are left out (a step made with another method continues with this one).

        Raises:
            ValueError: a tensor is missing or has the wrong shape.
        """
        low_res, score = tensors.get("low_res_logits"), tensors.get("score")
        if not isinstance(low_res, torch.Tensor) or low_res.ndim != 4 or low_res.shape[:2] != (1, 1):
            raise ValueError("a stored step needs 'low_res_logits' of shape 1×1×g×g")
        if not isinstance(score, torch.Tensor) or score.numel() != 1:
            raise ValueError("a stored step needs a one-element 'score'")
        predictor = self.predictor
        if not predictor.is_image_set:
            raise RuntimeError("no image is set; call predictor.set_image(image) before restoring steps")
        device = predictor.device
        final = tensors.get("final_logits")
        own = {name[len(STATE_PREFIX):]: value.to(device) for name, value in tensors.items()
               if name.startswith(STATE_PREFIX)}
        state: dict = {}
        for stage in self.stages:
            state.update(stage.state_from_tensors(own, predictor.features))
        sizer = ImageSizer(predictor.transforms, predictor.input_size, predictor.original_size)
        return StepResult(low_res.to(device), float(score), state,
                          None if final is None else final.to(device), sizer, predictor.model.mask_threshold)
