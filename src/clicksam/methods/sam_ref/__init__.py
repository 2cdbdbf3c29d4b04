"""SAM-REF (Yu et al., CVPR 2025): GlobalDiff and PatchDiff refiners after SAM's decoder.

SPEC §5. ``attach(model)`` adds a :class:`SamRef` at ``model.sam_ref``; :class:`SamRefStage`
runs it in the interaction pipeline; ``save_sam_ref_file`` / ``load_sam_ref_file`` write and
read method files that carry the refiner's :class:`SamRefConfig`.
"""
from __future__ import annotations

from .config import SamRefConfig
from .model import (SamRef, SamRefOutput, attach, attach_from_metadata, config_from_metadata,
                    load_sam_ref_file, save_sam_ref_file)
from .prompt_map import click_disks, prompt_map, upsample_logits
from .refiner import DetailRefiner, RefinerContext, RefinerOutput
from .stage import SamRefStage
from .window import crop_resize, detail_window, largest_changed_region, paste, use_previous_base

__all__ = [
    "DetailRefiner",
    "RefinerContext",
    "RefinerOutput",
    "SamRef",
    "SamRefConfig",
    "SamRefOutput",
    "SamRefStage",
    "attach",
    "attach_from_metadata",
    "config_from_metadata",
    "click_disks",
    "crop_resize",
    "detail_window",
    "largest_changed_region",
    "load_sam_ref_file",
    "paste",
    "prompt_map",
    "save_sam_ref_file",
    "upsample_logits",
    "use_previous_base",
]
