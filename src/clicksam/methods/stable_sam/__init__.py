"""Stable-SAM (Fan et al., arXiv 2311.15776, ICLR 2025): stable masks from casual prompts.

SPEC §3. A 0.08 M-parameter plugin inside SAM's mask decoder, SAM itself frozen:

- :class:`StableSamPlugin` (``model.stable_sam``): DSP (deformable resampling of the image
  features) and DRP (routing between deformed and original features) in the token-to-image
  cross-attention of the decoder's 2nd two-way block; untrained, it is the identity.
- :func:`attach`: add the untrained plugin to a model; :func:`decoder_hooks`: the decoder hooks
  that route a decode through it.
- :class:`StableSamStage`: the pipeline stage (``InteractiveSession(..., method="stable-sam")``).
- :class:`StableSamTraining`: robust training (RTS) for ``clicksam train --method stable-sam``.
- ``SPEC``: the method's registry entry.

The names load on first use, so that listing the registered methods imports no model code.
"""
from __future__ import annotations

from clicksam.methods.registry import UNTRAINED_IDENTITY, MethodSpec, lazy_exports

# The model families the plugin applies to: it needs the decoder's second two-way block and a square
# grid of image tokens, which SAM's, HQ-SAM's and SAM 2's decoders share (SAM 2 keeps the single-mask
# token after its object-score and IoU tokens; attach reads where).
FAMILIES = ("sam", "sam2", "hq-sam")

_PLUGIN = "clicksam.methods.stable_sam.plugin"
_LAZY = {
    "DeformableSamplingPlugin": _PLUGIN,
    "DynamicRoutingPlugin": _PLUGIN,
    "RoutedFeatures": _PLUGIN,
    "StableSamPlugin": _PLUGIN,
    "attach": _PLUGIN,
    "decoder_hooks": _PLUGIN,
    "sample_tokens_at_offsets": _PLUGIN,
    "StableSamStage": "clicksam.methods.stable_sam.stage",
    "StableSamTraining": "clicksam.methods.stable_sam.training",
}

SPEC = MethodSpec(
    name="stable-sam",
    stage="clicksam.methods.stable_sam.stage:StableSamStage",
    attribute="stable_sam",
    order=10,
    attach=f"{_PLUGIN}:attach",
    training="clicksam.methods.stable_sam.training:StableSamTraining",
    families=FAMILIES,
    untrained=UNTRAINED_IDENTITY,
    weights_hint="load a stable-sam method file (written by `clicksam train --method stable-sam`)",
    description="Stable-SAM: deformable sampling + dynamic routing in the decoder (ICLR 2025)",
)

__all__ = ["SPEC", *_LAZY]

__getattr__ = lazy_exports(__name__, _LAZY)
