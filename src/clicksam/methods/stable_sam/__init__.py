"""Stable-SAM (Fan et al., arXiv 2311.15776, ICLR 2025): stable masks from casual prompts.

SPEC §3. A 0.08 M-parameter plugin inside SAM's mask decoder, SAM itself frozen:

- :class:`StableSamPlugin` (``model.stable_sam``): DSP (deformable resampling of the image
  features) and DRP (routing between deformed and original features) in the token-to-image
  cross-attention of the decoder's 2nd two-way block; untrained, it is the identity.
- :func:`attach`: add the untrained plugin to a model.
- :class:`StableSamStage`: the pipeline stage (``InteractiveSession(..., method="stable-sam")``).
- :class:`StableSamTraining`: robust training (RTS) for ``clicksam train --method stable-sam``
  (imported lazily: it needs the training package).
"""
from __future__ import annotations

from typing import Any

from .plugin import (DeformableSamplingPlugin, DynamicRoutingPlugin, RoutedFeatures, StableSamPlugin, attach,
                     sample_tokens_at_offsets)
from .stage import StableSamStage

_LAZY = {"StableSamTraining": "clicksam.methods.stable_sam.training"}

__all__ = [
    "DeformableSamplingPlugin",
    "DynamicRoutingPlugin",
    "RoutedFeatures",
    "StableSamPlugin",
    "StableSamStage",
    "attach",
    "sample_tokens_at_offsets",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
