"""Stable-SAM's plugin (Fan et al., arXiv 2311.15776; SPEC §3): DSP and DRP.

The plugin sits in the token-to-image cross-attention of the mask decoder's *second* two-way
block (``mask_decoder.transformer.layers.1.cross_attn_token_to_image``) as that block's key/value
plugin (:class:`clicksam.models.hooks.DecoderHooks`, see :func:`decoder_hooks`). It is called as
``plugin(queries, keys)`` with

* ``queries`` B×T×C: the prompt tokens after that block's self-attention and ``norm1``
  (token 0 = IoU token, 1 = single-mask output token, 2-4 multimask tokens, then prompts);
* ``keys`` B×HW×C: the block's image features x (H×W row-major, the 64×64 grid for SAM);

and returns the features used as that attention's keys (plus SAM's key PE) and values.
Everything else in SAM (queries, image-to-token attention, the other blocks) is untouched.

DSP, the deformable sampling plugin: ``x* = proj(x)`` (1×1 conv), an offset net (depthwise 5×5
conv, LayerNorm2d, GELU, 1×1 conv to 2 channels) predicts one offset Δp = (Δx, Δy) per grid
cell, in cells, and x* is bilinearly sampled at p + Δp (outside the grid reads zeros).

DRP, the dynamic routing plugin: an MLP (Linear C→32, LayerNorm, GELU, Linear 32→2, softmax)
on the single-mask output token gives (α1, α2) per prompt; keys/values = α1·x*(p+Δp) + α2·x.

Decisions (SPEC §3 "Decision", and ours where the paper is silent):

* ``proj`` starts as the identity and the offset net's last conv at zero, so an untrained DSP
  returns x itself, bit for bit: cell (i, j) is sampled at (j + Δx, i + Δy) in cell units with
  the bilinear weights written out (:func:`sample_tokens_at_offsets`, the same samples as
  ``grid_sample`` with ``align_corners=False`` and zeros padding), so zero offsets give the
  weights (1, 0, 0, 0) and the cell's own value exactly.
* DRP's softmax starts at α = (``initial_alpha1``, 1 − ``initial_alpha1``) = (0.01, 0.99) for
  every token: zero weights in the last Linear and a bias of (log α1, log α2). α1 is not exactly
  0 so the router can learn, and because α1 + α2 = 1 the routed features are computed as
  ``x + α1·(x*(p+Δp) − x)``, which equals α1·x*(p+Δp) + α2·x up to float round-off and gives
  x *exactly* whenever the deformed features equal x. Hence "an untrained plugin reproduces SAM
  exactly" holds bit for bit, whatever α is (tests check 0 difference and < 1e-6).
* With α forced (:meth:`StableSamPlugin.forced_alpha`) the paper's formula α1·d + α2·x is used
  as written; (0, 1) then gives x exactly for any plugin weights (vanilla SAM).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.common import LayerNorm2d
from clicksam.models.hooks import NO_HOOKS, DecoderHooks

SINGLE_MASK_TOKEN = 1  # index of SAM's single-mask output token among the decoder's tokens (SAM 2's: 2)
ROUTER_HIDDEN = 32


def grid_side(num_cells: int) -> int:
    """The side of the square feature grid with ``num_cells`` cells (SAM's grids are square)."""
    side = math.isqrt(num_cells)
    if side * side != num_cells:
        raise ValueError(
            f"Stable-SAM expects image features on a square grid, got {num_cells} cells; "
            "SAM's embedding is S/16 × S/16 for a square S×S frame"
        )
    return side


def sample_tokens_at_offsets(tokens: torch.Tensor, offsets: torch.Tensor, side: int) -> torch.Tensor:
    """DSP's bilinear resampling of channels-last features at each cell + its offset.

    Args:
        tokens: B×HW×C features, row-major over a side×side grid.
        offsets: B×H×W×2 offsets in cells, (Δx, Δy) in the last axis.
    Returns:
        B×HW×C features bilinearly sampled at each cell + its offset; taps outside the grid read 0.

    The four bilinear taps of every cell are one ``embedding_bag`` (a weighted sum of gathered
    rows) instead of ``grid_sample`` on B×C×H×W, so the decoder's B×HW×C features are never
    transposed; about 6× faster on a CPU. The sample position of cell (i, j) is (j + Δx, i + Δy)
    in cell units, which is what ``grid_sample`` (``align_corners=False``, zeros padding) reads
    from the grid ``(2·(j + Δx) + 1) / W − 1`` (the tests check both agree); zero offsets
    give weights (1, 0, 0, 0) and return the features exactly. Gradients reach ``tokens`` and,
    through the fractional weights, ``offsets``.
    """
    b, n, c = tokens.shape
    if offsets.shape != (b, side, side, 2) or n != side * side:
        raise ValueError(f"offsets must be B×H×W×2 = {(b, side, side, 2)} for tokens {tuple(tokens.shape)}, "
                         f"got {tuple(offsets.shape)}")
    offsets = offsets.to(tokens.dtype)
    cells = torch.arange(side, device=tokens.device, dtype=tokens.dtype)
    x = cells[None, None, :] + offsets[..., 0]
    y = cells[None, :, None] + offsets[..., 1]
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    tap_x = torch.stack([x0, x0 + 1, x0, x0 + 1], dim=-1)
    tap_y = torch.stack([y0, y0, y0 + 1, y0 + 1], dim=-1)
    weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=-1)
    inside = (tap_x >= 0) & (tap_x < side) & (tap_y >= 0) & (tap_y < side)
    first_row = (torch.arange(b, device=tokens.device) * n)[:, None, None, None]
    # a tap outside the grid reads row 0 with weight 0: it adds nothing and passes no gradient
    index = torch.where(inside, first_row + tap_y * side + tap_x, torch.zeros_like(tap_x))
    weights = weights * inside
    out = F.embedding_bag(index.reshape(-1, 4), tokens.reshape(b * n, c), mode="sum",
                          per_sample_weights=weights.reshape(-1, 4))
    return out.reshape(b, n, c)


class DeformableSamplingPlugin(nn.Module):
    """DSP: projected image features resampled at learned offsets.

    Args:
        dim: channels C of the image features (256 for SAM).
        kernel_size: the depthwise conv of the offset net (5).
    """

    def __init__(self, dim: int = 256, kernel_size: int = 5) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 1)
        self.offset_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.offset_norm = LayerNorm2d(dim)
        self.offset_act = nn.GELU()
        self.offset_out = nn.Conv2d(dim, 2, 1)
        self.reset_identity()

    @torch.no_grad()
    def reset_identity(self) -> None:
        """``proj`` = identity, offsets = 0: the DSP returns its input (SPEC §3 decision)."""
        dim = self.proj.weight.shape[0]
        self.proj.weight.copy_(torch.eye(dim, device=self.proj.weight.device).view(dim, dim, 1, 1))
        self.proj.bias.zero_()
        self.offset_out.weight.zero_()
        self.offset_out.bias.zero_()

    def forward(self, tokens: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            tokens: B×HW×C image features x, row-major over a side×side grid (the decoder's layout).
        Returns:
            (deformed features x*(p+Δp) B×HW×C, offsets Δp B×H×W×2 in cells, (Δx, Δy) last).

        Runs channels-last where it can (the 1×1 convs as ``F.linear`` on tokens, LayerNorm2d
        as a fused ``layer_norm`` over the last axis): the same maths as the modules, cheaper on CPU.
        """
        b, n, c = tokens.shape
        projected = F.linear(tokens, self.proj.weight.view(c, c), self.proj.bias)  # x*, B×HW×C
        # the same memory seen as B×C×H×W in channels-last strides: the depthwise conv runs
        # there 4-5× faster than on a transposed copy and returns channels-last too
        grid = projected.reshape(b, side, side, c).permute(0, 3, 1, 2)
        hidden = self.offset_dw(grid).permute(0, 2, 3, 1)  # B×H×W×C
        norm = self.offset_norm
        hidden = self.offset_act(F.layer_norm(hidden, (c,), norm.weight, norm.bias, norm.eps))
        # Offsets and sampling positions in float32 even under bf16/fp16 autocast: a bf16 grid
        # would place samples only to about 1/8 of a cell on a 64-cell grid.
        with torch.autocast(tokens.device.type, enabled=False):
            weight, bias = self.offset_out.weight.view(2, c).float(), self.offset_out.bias.float()
            offsets = F.linear(hidden.float(), weight, bias)  # B×H×W×2
            deformed = sample_tokens_at_offsets(projected.float(), offsets, side)
        return deformed, offsets


class DynamicRoutingPlugin(nn.Module):
    """DRP: (α1, α2) = softmax(MLP(token)), the weights of deformed vs original features.

    Args:
        dim: token width C (256).
        hidden: hidden width (32).
        initial_alpha1: α1 at initialisation, for every token (0 < α1 < 1).
    """

    def __init__(self, dim: int = 256, hidden: int = ROUTER_HIDDEN, initial_alpha1: float = 0.01) -> None:
        super().__init__()
        if not 0.0 < initial_alpha1 < 1.0:
            raise ValueError(f"initial_alpha1 must be in (0, 1) so that softmax can reach it, got {initial_alpha1}")
        self.initial_alpha1 = float(initial_alpha1)
        self.fc1 = nn.Linear(dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, 2)
        self.reset_routing()

    @torch.no_grad()
    def reset_routing(self) -> None:
        """Zero last-layer weights and bias (log α1, log α2): α = (α1, 1 − α1) for any token."""
        a1 = self.initial_alpha1
        self.fc2.weight.zero_()
        self.fc2.bias.copy_(self.fc2.bias.new_tensor([math.log(a1), math.log(1.0 - a1)]))

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        """token: B×C (the single-mask output token) -> α B×2 (softmax, rows sum to 1)."""
        return torch.softmax(self.fc2(self.act(self.norm(self.fc1(token)))).float(), dim=-1).to(token.dtype)


@dataclass
class RoutedFeatures:
    """One plugin call, for inspection.

    features: B×HW×C routed keys/values; alpha: B×2 (α1 deformed, α2 original);
    offsets: B×2×H×W DSP offsets in cells (Δx, Δy); deformed: B×C×H×W x*(p+Δp).
    """

    features: torch.Tensor
    alpha: torch.Tensor
    offsets: torch.Tensor
    deformed: torch.Tensor


class StableSamPlugin(nn.Module):
    """DSP + DRP, the module at ``model.stable_sam`` and the decoder's ``kv_plugin``.

    Args:
        dim: SAM's transformer width (256).
        kernel_size: DSP's depthwise kernel (5).
        router_hidden: DRP's hidden width (32).
        initial_alpha1: DRP's α1 at initialisation (0.01).
        single_mask_token: the index of the single-mask output token among the block's queries
            (SAM, HQ-SAM: 1 after the IoU token; SAM 2: 2, after its object-score and IoU tokens).

    Example:
        >>> plugin = StableSamPlugin()
        >>> keys = torch.randn(2, 64 * 64, 256); queries = torch.randn(2, 7, 256)
        >>> bool((plugin(queries, keys) == keys).all())   # untrained: the identity
        True
    """

    def __init__(self, dim: int = 256, kernel_size: int = 5, router_hidden: int = ROUTER_HIDDEN,
                 initial_alpha1: float = 0.01, single_mask_token: int = SINGLE_MASK_TOKEN) -> None:
        super().__init__()
        self.dim = dim
        self.single_mask_token = int(single_mask_token)
        self.dsp = DeformableSamplingPlugin(dim, kernel_size)
        self.drp = DynamicRoutingPlugin(dim, router_hidden, initial_alpha1)
        self.alpha_override: Optional[tuple[float, float]] = None
        # B×2 α of the last call (detached), for diagnostics and training metrics
        self.last_alpha: Optional[torch.Tensor] = None

    def reset_parameters(self) -> None:
        """Back to the untrained state (the identity)."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, LayerNorm2d):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
                elif module is not self and hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        self.dsp.reset_identity()
        self.drp.reset_routing()

    @contextlib.contextmanager
    def forced_alpha(self, alpha1: float, alpha2: float) -> Iterator[None]:
        """Within the block, use (α1, α2) instead of DRP's output: keys = α1·x*(p+Δp) + α2·x.
        (0, 1) is vanilla SAM whatever the weights."""
        previous = self.alpha_override
        self.alpha_override = (float(alpha1), float(alpha2))
        try:
            yield
        finally:
            self.alpha_override = previous

    def route(self, queries: torch.Tensor, keys: torch.Tensor) -> RoutedFeatures:
        """The routed keys/values and their ingredients (see the module docstring for shapes)."""
        if queries.dim() != 3 or keys.dim() != 3 or queries.shape[0] != keys.shape[0]:
            raise ValueError(f"expected queries B×T×C and keys B×HW×C with the same B, got "
                             f"{tuple(queries.shape)} and {tuple(keys.shape)}")
        b, n, c = keys.shape
        if c != self.dim or queries.shape[2] != self.dim:
            raise ValueError(f"Stable-SAM was built for width {self.dim}, got queries {tuple(queries.shape)} "
                             f"and keys {tuple(keys.shape)}")
        if queries.shape[1] <= self.single_mask_token:
            raise ValueError(f"queries must hold SAM's output tokens (IoU, mask tokens, ...), got {queries.shape[1]} tokens")
        side = grid_side(n)
        deformed_tokens, offsets = self.dsp(keys, side)
        deformed_tokens = deformed_tokens.to(keys.dtype)
        if self.alpha_override is None:
            alpha = self.drp(queries[:, self.single_mask_token])
            # x + α1·(d − x) = α1·d + α2·x since α2 = 1 − α1; exactly x when d == x
            features = torch.lerp(keys, deformed_tokens, alpha[:, :1, None].to(keys.dtype))
        else:
            a1, a2 = self.alpha_override
            alpha = keys.new_tensor(self.alpha_override).expand(b, 2)
            features = a2 * keys + a1 * deformed_tokens
        self.last_alpha = alpha.detach()
        # B×C×H×W and B×2×H×W views for inspection (no copies)
        deformed = deformed_tokens.reshape(b, side, side, c).permute(0, 3, 1, 2)
        return RoutedFeatures(features, alpha, offsets.permute(0, 3, 1, 2), deformed)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """The kv_plugin call: queries B×T×C, keys B×HW×C -> routed keys/values B×HW×C."""
        return self.route(queries, keys).features


# the two-way block whose token-to-image cross-attention the plugin feeds (the second one)
DECODER_BLOCK = 1


def decoder_hooks(plugin: StableSamPlugin, hooks: DecoderHooks = NO_HOOKS) -> DecoderHooks:
    """``hooks`` plus ``plugin`` as the key/value plugin of block :data:`DECODER_BLOCK`; hand the
    result to ``Sam.decode(..., hooks=...)``."""
    return hooks.with_kv_plugin(DECODER_BLOCK, plugin)


def attach(model: nn.Module, initial_alpha1: float = 0.01) -> StableSamPlugin:
    """Attach an untrained :class:`StableSamPlugin` at ``model.stable_sam`` (on the model's
    device, eval mode) and return it. Its width and the position of the single-mask token follow
    the model's mask decoder (SAM's, HQ-SAM's or SAM 2's: the same two-way blocks)."""
    decoder = getattr(model, "mask_decoder", None)
    if decoder is None:
        raise ValueError("attach(model) needs a SAM model with a mask_decoder")
    device = next(model.parameters()).device
    with torch.device(device):
        plugin = StableSamPlugin(decoder.transformer_dim, initial_alpha1=initial_alpha1,
                                 single_mask_token=decoder.single_mask_token_index)
    plugin.eval()
    model.add_module("stable_sam", plugin)
    return plugin
