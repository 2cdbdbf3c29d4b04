"""Methods: optional, combinable stages around SAM's decoder, as plug-ins.

A *method string* is a ``+``-joined set of method names (``"sam"`` alone means no stage), e.g.
``"stable-sam+focsam+sam-ref"``; the stages always run in their specs' order. Each method
registers one :class:`MethodSpec` (see :mod:`clicksam.methods.registry`); its :class:`Stage`
subclass runs in every interaction step.

Adding a method (in this package or in another one)::

    from clicksam.methods import MethodSpec, Stage

    class Grow(Stage):
        def after_decode(self, ctx, result):
            # e.g. new final logits over the padded model frame (the mask at the image size follows)
            return dataclasses.replace(result, final_logits=grow(result.frame_logits))

    SPEC = MethodSpec(name="grow", stage=Grow)

A sub-package of ``clicksam.methods`` exposes it as ``SPEC``; another package declares the entry
point ``[project.entry-points."clicksam.methods"] grow = "my_package.grow:SPEC"``. The method then
works in ``InteractiveSession(predictor, method="sam+grow")``, ``clicksam segment/eval --method``
and ``clicksam serve``.
"""
from __future__ import annotations

from typing import Any, Optional

from clicksam.methods.registry import (ENTRY_POINT_GROUP, UNTRAINED_IDENTITY, UNTRAINED_REFUSE, CheckpointFormat,
                                       ConvertedCheckpoint, MethodSpec, OnnxExport, PublishedWeights, canonical_method,
                                       get_spec,
                                       list_methods, method_help, parse_method, register, resolve, spec_for_attribute,
                                       specs, training_methods, unavailable_methods, unregister)

__all__ = [
    "CheckpointFormat",
    "ConvertedCheckpoint",
    "ENTRY_POINT_GROUP",
    "MethodSpec",
    "OnnxExport",
    "PublishedWeights",
    "Stage",
    "UNTRAINED_IDENTITY",
    "UNTRAINED_REFUSE",
    "attach_stage",
    "attached_methods",
    "available_stages",
    "canonical_method",
    "get_spec",
    "is_trained",
    "list_methods",
    "method_help",
    "missing_weights",
    "parse_method",
    "register",
    "resolve",
    "spec_for_attribute",
    "specs",
    "stage_class",
    "stage_module",
    "training_methods",
    "unavailable_methods",
    "unregister",
]


def __getattr__(name: str) -> Any:
    if name == "Stage":  # the engine imports torch; listing methods does not need it
        from clicksam.interaction import Stage

        return Stage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def stage_class(name: str) -> type:
    """The Stage subclass implementing method ``name``."""
    return resolve(get_spec(name).stage)


def available_stages() -> dict[str, bool]:
    """Each known method name -> whether its implementation can be used here."""
    result = {name: False for name in unavailable_methods()}
    for spec in specs():
        try:
            stage_class(spec.name)
            result[spec.name] = True
        except Exception:  # noqa: BLE001 - a stage still being written may fail in any way on import
            result[spec.name] = False
    return result


def is_trained(module: Any) -> bool:
    """Whether a method module holds trained weights (loaded from a file or set by training)."""
    return bool(getattr(module, "clicksam_trained", False))


def attach_stage(model: Any, name: str, metadata: Optional[dict[str, Any]] = None) -> Any:
    """Attach the untrained module of method ``name`` to ``model`` unless it is already there;
    returns the module (None for a method without one).

    With a method file's ``metadata``, a method with ``attach_from_metadata`` (a configurable
    design, e.g. refiner widths) is built to the file's configuration, replacing an untrained one.

    Raises:
        ValueError: the method does not apply to the model's family.
    """
    spec = get_spec(name)
    family = getattr(model, "family", "sam")
    if family not in spec.families:
        raise ValueError(f"the {name!r} method applies to {', '.join(spec.families)} models, "
                         f"not to this {family} model ({getattr(model, 'model_name', '?')})")
    if not spec.attribute:
        return None
    existing = stage_module(model, spec)
    if metadata is not None and spec.attach_from_metadata is not None:
        if existing is None or not is_trained(existing):
            return resolve(spec.attach_from_metadata)(model, metadata)
        return existing
    if existing is None:
        return resolve(spec.attach)(model)
    return existing


def stage_module(model: Any, spec: MethodSpec) -> Any:
    """The module of method ``spec`` on ``model``, or None (not attached, or a method without one)."""
    return model._modules.get(spec.attribute) if spec.attribute else None


def attached_methods(model: Any) -> list[MethodSpec]:
    """The specs of the methods whose modules ``model`` carries, in step order."""
    return [s for s in specs() if stage_module(model, s) is not None]


def missing_weights(spec: MethodSpec) -> str:
    """The message for an untrained stage that ``spec`` says must be refused."""
    hint = spec.weights_hint or f"load a {spec.name} method file (written by `clicksam train --method {spec.name}`)"
    return (f"the {spec.name!r} stage has no trained weights, and untrained it gives meaningless masks; "
            f"{hint}. Tests and benchmarks may opt in with allow_untrained=True")
