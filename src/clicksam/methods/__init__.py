"""Method stages that plug into SAM: Stable-SAM, FocSAM, SAM-REF, and their combinations.

A *method* is a ``+``-joined set of stage names (``"sam"`` alone means no stage), e.g.
``"stable-sam+focsam+sam-ref"``. Each stage lives in its own module, which provides
``attach(model)`` (adds the untrained stage module to the model under a fixed attribute) and a
:class:`~clicksam.methods.pipeline.Stage` subclass.
"""
from __future__ import annotations

import importlib
from types import ModuleType

# stage name -> "module:StageClass"
METHOD_STAGES: dict[str, str] = {
    "stable-sam": "clicksam.methods.stable_sam:StableSamStage",
    "focsam": "clicksam.methods.focsam:FocSamStage",
    "sam-ref": "clicksam.methods.sam_ref:SamRefStage",
}
# stage name -> the model attribute that holds its module
STAGE_ATTRIBUTES: dict[str, str] = {"stable-sam": "stable_sam", "focsam": "focus_refiner", "sam-ref": "sam_ref"}
# the order stages run in, whatever order the user writes them in
STAGE_ORDER: tuple[str, ...] = ("stable-sam", "focsam", "sam-ref")


def parse_method(method: str) -> list[str]:
    """``"sam-ref+focsam"`` -> ``["focsam", "sam-ref"]``; ``"sam"`` -> ``[]``.

    Raises:
        ValueError: for an unknown stage name.
    """
    if not isinstance(method, str) or not method.strip():
        raise ValueError(f"method must be a non-empty string such as 'sam' or 'focsam+sam-ref', got {method!r}")
    names = {part.strip().lower() for part in method.split("+") if part.strip()}
    names.discard("sam")
    unknown = sorted(names - set(METHOD_STAGES))
    if unknown:
        raise ValueError(
            f"unknown method stage(s) {', '.join(unknown)} in {method!r}; "
            f"use 'sam' or a '+'-joined combination of {', '.join(STAGE_ORDER)}"
        )
    return [n for n in STAGE_ORDER if n in names]


def canonical_method(stages: list[str]) -> str:
    """The canonical spelling of a list of stages (``"sam"`` when empty)."""
    return "+".join(n for n in STAGE_ORDER if n in stages) or "sam"


def _stage_module(name: str) -> ModuleType:
    module_name = METHOD_STAGES[name].split(":")[0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(module_name):
            raise RuntimeError(f"the {name!r} method is not available in this build of clicksam") from exc
        raise


def stage_class(name: str) -> type:
    """The Stage subclass implementing ``name``."""
    parse_method(name)
    return getattr(_stage_module(name), METHOD_STAGES[name].split(":")[1])


def available_stages() -> dict[str, bool]:
    """Each stage name -> whether its implementation can be imported here."""
    result = {}
    for name in STAGE_ORDER:
        try:
            stage_class(name)
            result[name] = True
        except (RuntimeError, AttributeError, ImportError):
            result[name] = False
    return result


def attach_stage(model, name: str, metadata: dict | None = None) -> None:
    """Attach the untrained module of stage ``name`` to ``model`` unless it is already there.

    With a method file's ``metadata``, a stage whose module defines ``attach_from_metadata``
    (a configurable design, e.g. SAM-REF's widths) is built to the file's configuration, replacing
    an untrained default one."""
    module = _stage_module(name)
    existing = model.stage(STAGE_ATTRIBUTES[name])
    if metadata is not None and hasattr(module, "attach_from_metadata"):
        if existing is None or not getattr(existing, "clicksam_trained", False):
            module.attach_from_metadata(model, metadata)
        return
    if existing is None:
        module.attach(model)
