"""``Pipeline``: the stages of a method string around SAM's decoder, one interaction step at a time.

The method names come from the registry (:mod:`clicksam.methods`); the step follows the contract of
:mod:`clicksam.interaction`. Untrained stages are checked here, where a step is built, so every user
of a step (session, evaluation, server) gets the same rule: an untrained stage declared the identity
warns once, one declared not to be is refused unless ``allow_untrained=True``.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

from clicksam.interaction import DecodeContext, Stage, StepResult
from clicksam.methods import (UNTRAINED_REFUSE, MethodSpec, canonical_method, get_spec, is_trained,
                              missing_weights, parse_method, resolve, stage_module)
from clicksam.prompts import Click

__all__ = ["Pipeline", "stage_problem"]


def stage_problem(model, spec: MethodSpec, allow_untrained: bool = False) -> Optional[str]:
    """Why ``model`` cannot run method ``spec`` (None when it can): its module is missing, or it
    is untrained while the spec refuses an untrained stage (unless ``allow_untrained``)."""
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
