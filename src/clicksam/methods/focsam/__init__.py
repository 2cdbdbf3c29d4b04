"""FocSAM (Huang et al., CVPR 2024): refocus SAM's embedding once, at the second click.

Public names: :class:`FocusRefiner`, :func:`modulated_deform_conv2d`, the focus-window helpers,
the official-checkpoint conversion and :class:`FocSamStage` (imported lazily, since it needs the
pipeline and the model code).
"""
from __future__ import annotations

from typing import Any

from clicksam.methods.focsam.dcn import modulated_deform_conv2d
from clicksam.methods.focsam.focus import box_to_cells, draw_expand_ratio, focus_box, focus_cells
from clicksam.methods.focsam.refiner import FocusRefiner

_LAZY = {
    "FocSamStage": "clicksam.methods.focsam.stage",
    "attach": "clicksam.methods.focsam.stage",
    "convert_official": "clicksam.methods.focsam.checkpoint",
    "is_official_focsam": "clicksam.methods.focsam.checkpoint",
}

__all__ = [
    "FocusRefiner",
    "modulated_deform_conv2d",
    "focus_box",
    "focus_cells",
    "box_to_cells",
    "draw_expand_ratio",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
