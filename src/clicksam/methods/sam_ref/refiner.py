"""The refiner network shared by SAM-REF's GlobalDiff and PatchDiff refiners (SPEC §5).

Early fusion at stride ``s`` (4): ``F0 = stem(I) + conv(D) + up(conv1×1(E))``, then residual
blocks each followed by ``+ up(conv1×1_k(E))``; a head predicts, for every stride cell, the
s×s full-resolution pixels of the refined logits M̄ and the error map Ê (sub-pixel
convolution), and the output is ``M = σ(Ê)·M̄ + (1−σ(Ê))·M_base``.

Design decisions (measured in benchmarks/sam_ref_speed.py):
- The stem and the prompt branch read the full-resolution pixels losslessly with a
  space-to-depth (pixel-unshuffle) before a 1×1 conv, so the stride-4 features still see
  every pixel at the cost of one small matmul; the head undoes it with a pixel shuffle.
- Convolutions are depthwise-separable (depthwise 3×3 + pointwise) to stay well inside the
  per-click CPU budget.
- M̄ is predicted as a residual over M_base with a zero-initialised last layer, and Ê starts
  at ``error_bias_init``: an untrained refiner returns SAM's logits exactly (a test).
- The image stem and the embedding projections do not depend on the clicks, so
  :meth:`DetailRefiner.encode_context` computes them once per image and the per-click
  :meth:`DetailRefiner.refine` reuses them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RefinerContext:
    """Click-independent features of one image (or one crop).

    Attributes:
        image_features: B×C×h×w stem features at the refiner's stride.
        embed_features: one B×C×h×w tensor per injection point (``num_blocks + 1``), SAM's
            embedding projected and upsampled to the feature grid.
    """

    image_features: torch.Tensor
    embed_features: list[torch.Tensor]


@dataclass
class RefinerOutput:
    """Outputs of one refiner, all B×1×H×W logits in the refiner's input frame.

    Attributes:
        logits: the gated combination M = σ(Ê)·M̄ + (1−σ(Ê))·M_base.
        refined_logits: the refiner's own prediction M̄.
        error_logits: the error map Ê (σ(Ê) > 0.5 where the refiner thinks M_base is wrong).
    """

    logits: torch.Tensor
    refined_logits: torch.Tensor
    error_logits: torch.Tensor


def _space_to_depth(x: torch.Tensor, stride: int) -> torch.Tensor:
    """B×C×H×W → B×(C·s²)×(H/s)×(W/s) in channels-last memory, s = ``stride``.

    The channel order is ``pixel_unshuffle``'s (c·s² + i·s + j for the pixel at row offset i,
    column offset j), written with one copy straight into channels-last memory: channels-last
    activations make PyTorch's CPU convolutions (oneDNN) about twice as fast on these shapes.
    """
    b, c, h, w = x.shape
    cells = x.reshape(b, c, h // stride, stride, w // stride, stride)
    nhwc = cells.permute(0, 2, 4, 1, 3, 5).reshape(b, h // stride, w // stride, c * stride * stride)
    return nhwc.permute(0, 3, 1, 2)


def _depth_to_space(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Inverse of :func:`_space_to_depth` (``pixel_shuffle``), B×(C·s²)×h×w → B×C×(h·s)×(w·s)."""
    b, cs, h, w = x.shape
    c = cs // (stride * stride)
    nhwc = x.permute(0, 2, 3, 1).reshape(b, h, w, c, stride, stride)
    return nhwc.permute(0, 3, 1, 4, 2, 5).reshape(b, c, h * stride, w * stride)


class PointwiseConv(nn.Conv2d):
    """A 1×1 convolution computed as one matrix product over channels-last pixels.

    Same parameters as ``nn.Conv2d(in, out, 1)``; on CPU PyTorch sends 1×1 convolutions
    through a slower im2col path with copies (measured 2× slower at 32×256×256), while this
    reads channels-last input without a copy and returns channels-last output.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x.permute(0, 2, 3, 1), self.weight[:, :, 0, 0], self.bias)
        return out.permute(0, 3, 1, 2)


class SeparableConv(nn.Module):
    """Depthwise 3×3 followed by a pointwise 1×1 convolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels)
        self.pointwise = PointwiseConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """``x + sep2(GELU(sep1(x)))``; the second conv starts at zero (the block is the identity)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = SeparableConv(channels, channels)
        self.act = nn.GELU()
        self.conv2 = SeparableConv(channels, channels)
        nn.init.zeros_(self.conv2.pointwise.weight)
        nn.init.zeros_(self.conv2.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class DetailRefiner(nn.Module):
    """One SAM-REF refiner: image + prompt map + SAM embedding + base logits → refined logits.

    Args:
        width: feature channels.
        num_blocks: residual blocks, each followed by an embedding re-injection.
        stride: feature stride; input sides must be multiples of it.
        embed_dim: channels of SAM's embedding.
        logit_scale: logits (the prompt map's third channel) enter as ``tanh(x / logit_scale)``.
        error_bias_init: initial bias of the error-map logits.
    """

    def __init__(
        self,
        width: int = 32,
        num_blocks: int = 3,
        stride: int = 4,
        embed_dim: int = 256,
        logit_scale: float = 8.0,
        error_bias_init: float = -4.0,
    ) -> None:
        super().__init__()
        self.width = width
        self.stride = stride
        self.embed_dim = embed_dim
        self.logit_scale = float(logit_scale)
        cells = stride * stride
        self.image_stem = nn.Sequential(
            PointwiseConv(3 * cells, width), nn.GELU(), SeparableConv(width, width)
        )
        self.prompt_stem = PointwiseConv(3 * cells, width)
        self.embed_projs = nn.ModuleList(PointwiseConv(embed_dim, width) for _ in range(num_blocks + 1))
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(num_blocks))
        self.head = nn.Sequential(SeparableConv(width, width), nn.GELU())
        self.head_out = PointwiseConv(width, 2 * cells)
        nn.init.zeros_(self.head_out.weight)
        with torch.no_grad():
            self.head_out.bias.zero_()
            # Output channels are (map, sub-pixel): the second `cells` channels are Ê.
            self.head_out.bias[cells:] = error_bias_init

    def _check(self, name: str, x: torch.Tensor, channels: int) -> None:
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(f"{name} must be B×{channels}×H×W, got shape {tuple(x.shape)}")
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ValueError(
                f"{name} sides {tuple(x.shape[-2:])} must be multiples of the refiner stride "
                f"{self.stride}"
            )

    def encode_context(self, image: torch.Tensor, embedding: torch.Tensor) -> RefinerContext:
        """Click-independent features.

        Args:
            image: B×3×H×W normalised image (SAM's preprocessing; padded frame or a crop).
            embedding: B×embed_dim×h×w SAM embedding covering the same area as ``image``
                (64×64 for the 1024 frame); it is resized to the H/stride × W/stride grid.
        """
        self._check("image", image, 3)
        if embedding.dim() != 4 or embedding.shape[1] != self.embed_dim:
            raise ValueError(
                f"embedding must be B×{self.embed_dim}×h×w, got shape {tuple(embedding.shape)}"
            )
        if embedding.shape[0] != image.shape[0]:
            raise ValueError(f"embedding batch {embedding.shape[0]} != image batch {image.shape[0]}")
        grid = (image.shape[-2] // self.stride, image.shape[-1] // self.stride)
        image_features = self.image_stem(_space_to_depth(image, self.stride))
        embed_features = []
        for proj in self.embed_projs:
            e = proj(embedding)
            if e.shape[-2:] != grid:
                e = F.interpolate(e, size=grid, mode="bilinear", align_corners=False)
            embed_features.append(e.contiguous(memory_format=torch.channels_last))
        return RefinerContext(image_features, embed_features)

    def refine(
        self, context: RefinerContext, prompt: torch.Tensor, base_logits: torch.Tensor
    ) -> RefinerOutput:
        """Per-click refinement.

        Args:
            context: from :meth:`encode_context` for the same image/crop.
            prompt: B×3×H×W prompt map (positive disks, negative disks, raw logits).
            base_logits: B×1×H×W logits M_base the output is gated with.
        Returns:
            :class:`RefinerOutput` with B×1×H×W maps.
        """
        self._check("prompt", prompt, 3)
        self._check("base_logits", base_logits, 1)
        if prompt.shape[-2:] != base_logits.shape[-2:] or prompt.shape[0] != base_logits.shape[0]:
            raise ValueError(
                f"prompt {tuple(prompt.shape)} and base_logits {tuple(base_logits.shape)} differ"
            )
        grid = (prompt.shape[-2] // self.stride, prompt.shape[-1] // self.stride)
        if context.image_features.shape[-2:] != grid:
            raise ValueError(
                f"context grid {tuple(context.image_features.shape[-2:])} does not match the "
                f"prompt's {grid}; encode the context from the same image frame"
            )
        cells = self.stride * self.stride
        unshuffled = _space_to_depth(prompt, self.stride)  # channels 2·cells.. hold the logits
        if unshuffled.data_ptr() == prompt.data_ptr():  # a view (stride 1): never write the input
            unshuffled = unshuffled.clone()
        unshuffled[:, 2 * cells:] = torch.tanh(unshuffled[:, 2 * cells:] / self.logit_scale)
        x = context.image_features + self.prompt_stem(unshuffled)
        x = x + context.embed_features[0]
        for block, injected in zip(self.blocks, context.embed_features[1:]):
            x = block(x) + injected
        out = _depth_to_space(self.head_out(self.head(x)), self.stride)  # B×2×H×W
        delta, error = out[:, :1], out[:, 1:]
        # σ(Ê)·(M_base + Δ) + (1−σ(Ê))·M_base, written with one product.
        logits = base_logits + torch.sigmoid(error) * delta
        refined = base_logits + delta
        return RefinerOutput(logits, refined, error)

    def forward(
        self,
        image: torch.Tensor,
        prompt: torch.Tensor,
        embedding: torch.Tensor,
        base_logits: torch.Tensor,
    ) -> RefinerOutput:
        """:meth:`encode_context` then :meth:`refine` (shapes as there)."""
        return self.refine(self.encode_context(image, embedding), prompt, base_logits)
