"""SAM-REF (Yu et al., CVPR 2025): GlobalDiff and PatchDiff refiners after SAM's decoder.

SPEC §5. ``attach(model)`` adds a :class:`SamRef` at ``model.sam_ref``; the session stage is
:class:`clicksam.methods.sam_ref.stage.SamRefStage` (imported lazily, it needs the pipeline).
"""
from __future__ import annotations

from .config import SamRefConfig
from .model import SamRef, SamRefOutput, attach
from .prompt_map import click_disks, prompt_map, upsample_logits
from .refiner import DetailRefiner, RefinerContext, RefinerOutput
from .window import crop_resize, detail_window, largest_changed_region, paste, use_previous_base

__all__ = [
    "DetailRefiner",
    "RefinerContext",
    "RefinerOutput",
    "SamRef",
    "SamRefConfig",
    "SamRefOutput",
    "attach",
    "click_disks",
    "crop_resize",
    "detail_window",
    "largest_changed_region",
    "paste",
    "prompt_map",
    "upsample_logits",
    "use_previous_base",
]
