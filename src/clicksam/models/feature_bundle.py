"""A model family's feature bundle (the named per-image tensors its ``encode`` returns and its
``decode`` reads) and the broadcasting of per-image maps over the prompts of a decoder call."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch


def require_features(features: Mapping[str, torch.Tensor], names: Sequence[str], owner: str) -> None:
    """Refuse a bundle that lacks any of ``names`` (or a lone tensor where a bundle is needed),
    saying which and where bundles come from."""
    if not isinstance(features, Mapping):
        raise ValueError(f"the {owner} decoder reads the whole feature bundle {list(names)} of {owner}.encode_features, "
                         f"got a {type(features).__name__}; pass predictor.image_features (or the bundle) instead of the embedding alone")
    missing = [name for name in names if name not in features]
    if missing:
        raise ValueError(f"the {owner} feature bundle lacks {missing}; it holds {sorted(features)} (use {owner}.encode_features)")


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
