"""``StableSamStage``: Stable-SAM in the interaction pipeline.

The stage only switches the decoder's second two-way block to the plugin's keys/values
(``ctx.use_stable_sam = True``); every decode of the step goes through it, FocSAM's coarse decode
included, so it combines with ``focsam`` and ``sam-ref`` without further coordination.
"""
from __future__ import annotations

from clicksam.methods.pipeline import DecodeContext, Stage

from .plugin import StableSamPlugin


class StableSamStage(Stage):
    """Routes the decoder's 2nd-block cross-attention through ``model.stable_sam``."""

    name = "stable-sam"
    attribute = "stable_sam"

    def __init__(self, model) -> None:
        super().__init__(model)
        if not isinstance(self.module, StableSamPlugin):
            raise RuntimeError(
                "the 'stable-sam' stage needs model.stable_sam; build the model with "
                "build_sam(..., methods=['stable-sam']) or load a stable-sam method file"
            )

    def before_decode(self, ctx: DecodeContext) -> None:
        ctx.use_stable_sam = True
