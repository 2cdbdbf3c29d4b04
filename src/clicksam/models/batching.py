"""Broadcasting per-image feature maps over the prompts of a decoder call."""
from __future__ import annotations

import torch


def per_prompt(features: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    """A per-image B'×C×H×W map for ``batch`` prompts: expanded when B' is 1, returned when B' equals
    ``batch``; any other B' is refused with a message naming ``name``."""
    if features.shape[0] == batch:
        return features
    if features.shape[0] == 1:
        return features.expand(batch, *features.shape[1:])
    raise ValueError(
        f"{name} has batch {features.shape[0]} but the prompts have batch {batch}; "
        "give one feature map per prompt or a single shared one"
    )
