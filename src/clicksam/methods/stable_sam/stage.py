"""``StableSamStage``: Stable-SAM in the interaction pipeline.

The stage only hands the decoder the plugin as the key/value plugin of its second two-way block
(``ctx.hooks``); every decode of the step goes through it, FocSAM's coarse decode included, so it
combines with ``focsam`` and ``sam-ref`` without further coordination.
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from clicksam.interaction import DecodeContext, Stage

from .plugin import StableSamPlugin, decoder_hooks


class StableSamStage(Stage):
    """Routes the decoder's 2nd-block cross-attention through ``model.stable_sam``."""

    def __init__(self, model: nn.Module, module: Optional[nn.Module] = None) -> None:
        super().__init__(model, module)
        if not isinstance(self.module, StableSamPlugin):
            raise RuntimeError(
                "the 'stable-sam' stage needs model.stable_sam; build the model with "
                "build_sam(..., methods=['stable-sam']) or load a stable-sam method file"
            )

    def before_decode(self, ctx: DecodeContext) -> None:
        ctx.hooks = decoder_hooks(self.module, ctx.hooks)
