"""Configuration of the SAM-REF refiners (SPEC §5).

Every design choice that will be measured (widths, block count, feature stride, the detail
window rule, the selector threshold) lives here, so an experiment varies one dataclass field
instead of editing modules. The values are stored in a method file's metadata, so a saved
refiner is rebuilt with the shapes it was trained with.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class SamRefConfig:
    """Hyper-parameters of SAM-REF's GlobalDiff (GFR) and PatchDiff (LFR) refiners.

    Attributes:
        width: channels of the GFR's stride-``stride`` features (SPEC: 32-48).
        patch_width: channels of the LFR's features.
        num_blocks: residual blocks per refiner, each followed by a re-injection of SAM's
            embedding (SPEC: 3).
        stride: feature stride of both refiners; the GFR works on ``image_size / stride``
            cells (SPEC: 4, i.e. 256×256 for the 1024 frame).
        embed_dim: channels of SAM's image embedding (256 for every SAM).
        image_size: side of SAM's padded input frame (1024).
        click_radius: radius in pixels of a click disk in the prompt map, in the 1024 frame.
        logit_scale: SAM logits enter the refiners as ``tanh(logits / logit_scale)``.
        patch_size: side of the square the LFR crop is resized to (256).
        window_expansion: the detail window is expanded by this factor about its centre (1.4).
        window_min_size: the detail window's sides are at least this many pixels (64).
        fallback_scale: with no changed region the window is a square of side
            ``fallback_scale * max(object h, w)`` centred on the last click (0.4).
        selector_threshold: paste the patch on the previous final mask when the ratio of
            error-map areas exceeds this (1.1).
        error_bias_init: initial bias of the error-map logits; a very negative value means an
            untrained refiner trusts SAM everywhere.
    """

    width: int = 32
    patch_width: int = 32
    num_blocks: int = 3
    stride: int = 4
    embed_dim: int = 256
    image_size: int = 1024
    click_radius: float = 5.0
    logit_scale: float = 8.0
    patch_size: int = 256
    window_expansion: float = 1.4
    window_min_size: int = 64
    fallback_scale: float = 0.4
    selector_threshold: float = 1.1
    error_bias_init: float = -4.0

    def __post_init__(self) -> None:
        for name in ("width", "patch_width", "num_blocks", "stride", "embed_dim", "image_size",
                     "patch_size", "window_min_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SamRefConfig.{name} must be a positive int, got {value!r}")
        if self.image_size % self.stride or self.patch_size % self.stride:
            raise ValueError(
                f"SamRefConfig.stride={self.stride} must divide image_size={self.image_size} "
                f"and patch_size={self.patch_size}"
            )
        for name in ("click_radius", "logit_scale", "fallback_scale", "selector_threshold"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"SamRefConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.window_expansion < 1.0:
            raise ValueError(
                f"SamRefConfig.window_expansion must be >= 1.0, got {self.window_expansion!r}"
            )
        if self.window_min_size > self.image_size:
            raise ValueError(
                f"SamRefConfig.window_min_size={self.window_min_size} exceeds "
                f"image_size={self.image_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored in method files."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SamRefConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error (a newer file format)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown SAM-REF config keys {unknown}; this clicksam knows {sorted(known)} "
                "(was the method file written by a newer version?)"
            )
        return cls(**dict(values))

    def replace(self, **changes: Any) -> "SamRefConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
