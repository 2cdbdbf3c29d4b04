"""Small building blocks shared by the SAM parts."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a B×C×H×W tensor (eps 1e-6, as SAM)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one fused layer_norm over a channels-last view: the same statistics as normalising
        # along dim 1 by hand, in one pass instead of six (4-5x faster on CPUs)
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class MLPBlock(nn.Module):
    """Two linear layers with an activation between them (``lin1``, ``lin2``)."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class MLP(nn.Module):
    """``num_layers`` linear layers (``layers.i``) with ``activation`` (ReLU, as SAM; Hiera: GELU)
    between them."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        sigmoid_output: bool = False,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))
        self.sigmoid_output = sigmoid_output
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


def upsample_conv_transpose(x: torch.Tensor, layer: nn.ConvTranspose2d) -> torch.Tensor:
    """``layer(x)`` for a ConvTranspose2d whose kernel equals its stride (no overlap), computed as
    one matrix product and a pixel shuffle, which is faster on CPUs than the transposed convolution.
    Other layers fall back to ``layer(x)``."""
    k = layer.kernel_size
    if (
        k != layer.stride
        or layer.padding != (0, 0)
        or layer.output_padding != (0, 0)
        or layer.dilation != (1, 1)
        or layer.groups != 1
    ):
        return layer(x)
    b, c, h, w = x.shape
    out_c = layer.weight.shape[1]
    y = x.flatten(2).transpose(1, 2) @ layer.weight.reshape(c, out_c * k[0] * k[1])
    y = y.reshape(b, h, w, out_c, k[0], k[1]).permute(0, 3, 1, 4, 2, 5).reshape(b, out_c, h * k[0], w * k[1])
    if layer.bias is not None:
        y = y + layer.bias[None, :, None, None]
    return y
