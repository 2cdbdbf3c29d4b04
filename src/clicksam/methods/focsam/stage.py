"""``FocSamStage``: FocSAM in the interaction pipeline (SPEC §4).

Click 1 decodes on the encoder's embedding F. At click 2 a coarse decode on F gives the coarse
logits and the single-mask token, the FocusRefiner turns them into F_r once, and click 2 is
decoded on F_r; later clicks decode on F_r. F_r travels in the step's ``state`` (one tensor shared
by every later step), so undo back to click 1 drops it and redo restores it; a stored step keeps F_r
and, restored, points it at the encoder embedding again. The single-mask token is used throughout.
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Optional

import torch
from torch import nn

from clicksam.interaction import DecodeContext, Stage
from clicksam.methods.focsam.refiner import FocusRefiner

# Keys of this stage's entries in ``StepResult.state``.
STATE_EMBEDDING = "focsam.embedding"  # 1×256×64×64 refined embedding F_r
STATE_SOURCE = "focsam.source"  # the encoder embedding F that F_r was computed from
REFOCUS_CLICK = 2  # FocSAM refocuses once, at the second click


def attach(model: nn.Module) -> FocusRefiner:
    """Attach an untrained FocusRefiner at ``model.focus_refiner`` (on the model's device) and return it.

    Its windows cover a quarter of the embedding grid per side, as FocSAM's 16×16 cells do on
    SAM's 64×64 grid, and its focus box reads logits in the model's frame."""
    device = next(model.parameters()).device
    grid = int(model.prompt_encoder.image_embedding_size[0])
    refiner = FocusRefiner(window_size=max(2, grid // 4), frame_size=int(model.image_size)).to(device).eval()
    model.add_module("focus_refiner", refiner)
    return refiner


class FocSamStage(Stage):
    """Decodes on the refocused embedding from the second click on (see the module docstring).

    ``last_timings`` holds the wall seconds of the last step's refocus (``"coarse"``,
    ``"refine"``), empty on steps that reuse F_r or decode on F.
    """

    state_keys = (STATE_EMBEDDING,)

    def __init__(self, model: nn.Module, module: Optional[nn.Module] = None) -> None:
        super().__init__(model, module)
        if not isinstance(self.module, FocusRefiner):
            raise RuntimeError(
                "the 'focsam' stage needs model.focus_refiner; build the model with "
                "build_sam(..., methods=['focsam']), load the official FocSAM checkpoint or a focsam method file"
            )
        self.last_timings: dict[str, float] = {}

    def state_from_tensors(self, tensors: Mapping[str, torch.Tensor], embedding: torch.Tensor) -> dict[str, Any]:
        """F_r, marked as computed from ``embedding`` (the image's encoder embedding) so it is reused."""
        refined = tensors.get(STATE_EMBEDDING)
        return {} if refined is None else {STATE_EMBEDDING: refined, STATE_SOURCE: embedding}

    @torch.no_grad()
    def before_decode(self, ctx: DecodeContext) -> None:
        self.last_timings = {}
        ctx.multimask = False  # FocSAM decodes with the single-mask token on every click
        source = ctx.embedding
        refined = ctx.state.get(STATE_EMBEDDING)
        if refined is not None and ctx.state.get(STATE_SOURCE) is source:
            ctx.embedding = refined
            return
        # a stale F_r (another image's embedding) is never reused
        ctx.state.pop(STATE_EMBEDDING, None)
        ctx.state.pop(STATE_SOURCE, None)
        if len(ctx.clicks) < REFOCUS_CLICK:
            return
        start = time.perf_counter()
        coarse = ctx.run_decoder(embedding=source, multimask=False)
        self.last_timings["coarse"] = time.perf_counter() - start
        start = time.perf_counter()
        refiner: FocusRefiner = self.module  # type: ignore[assignment]
        refined = refiner(source, coarse.low_res_logits.to(source.dtype), coarse.mask_token.to(source.dtype))
        self.last_timings["refine"] = time.perf_counter() - start
        ctx.state[STATE_EMBEDDING] = refined
        ctx.state[STATE_SOURCE] = source
        ctx.embedding = refined
