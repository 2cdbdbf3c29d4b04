"""SAM 2's FPN neck and the image encoder (Hiera trunk + neck).

The official neck also computes sine position encodings of every level; only SAM 2's video memory
attention reads them, so the image path leaves them out (they have no weights)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.sam2.hiera import Hiera


class FpnNeck(nn.Module):
    """1×1 lateral convolutions to ``d_model`` channels, with a top-down path (nearest ×2
    upsampling, summed) only into ``top_down_levels``; the other levels keep their lateral features.

    Args:
        backbone_channel_list: trunk widths, lowest resolution first (``convs.0`` reads the
            lowest-resolution level).
        top_down_levels: level indices (0 = highest resolution) that receive the top-down path.
    """

    def __init__(
        self,
        d_model: int,
        backbone_channel_list: Sequence[int],
        top_down_levels: Sequence[int] = (2, 3),
        interpolation: str = "nearest",
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(dim, d_model, kernel_size=1))) for dim in backbone_channel_list
        )
        self.top_down_levels = tuple(top_down_levels)
        self.interpolation = interpolation

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Trunk maps (highest resolution first) -> d_model-channel maps in the same order."""
        if len(features) != len(self.convs):
            raise ValueError(f"the neck takes {len(self.convs)} feature levels, got {len(features)}")
        last = len(self.convs) - 1
        out: list[torch.Tensor] = [torch.empty(0)] * len(features)
        previous = None
        for level in range(last, -1, -1):
            lateral = self.convs[last - level](features[level])
            if level in self.top_down_levels and previous is not None:
                align = None if self.interpolation == "nearest" else False
                top_down = F.interpolate(previous.float(), scale_factor=2.0, mode=self.interpolation, align_corners=align)
                previous = lateral + top_down
            else:
                previous = lateral
            out[level] = previous
        return out


class Sam2ImageEncoder(nn.Module):
    """Trunk + neck: B×3×S×S -> the neck's maps, highest resolution first, without the ``scalp``
    lowest-resolution ones (SAM 2 drops the stride-32 level after its top-down use)."""

    def __init__(self, trunk: Hiera, neck: FpnNeck, scalp: int = 1) -> None:
        super().__init__()
        if list(trunk.channel_list) != neck.backbone_channel_list:
            raise ValueError(f"trunk widths {trunk.channel_list} do not match the neck's {neck.backbone_channel_list}")
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.neck(self.trunk(x))
        return features[: len(features) - self.scalp]
