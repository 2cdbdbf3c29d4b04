"""SAM's mask decoder: a two-way transformer over prompt tokens and image features, mask
hypernetworks and an IoU head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.common import MLP, LayerNorm2d, upsample_conv_transpose
from clicksam.models.feature_bundle import per_prompt
from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.models.transformer import TwoWayTransformer


class MaskDecoder(nn.Module):
    """Predicts 4 low-res masks (token 0: single-mask output; tokens 1-3: multimask) and their IoU."""

    # where the single-mask output token sits among the transformer's tokens (after the IoU token)
    single_mask_token_index: int = 1

    def __init__(
        self,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """segment-anything's signature. Returns masks B×C×256×256 and IoU B×C (C = 3 or 1)."""
        masks, iou_pred, _ = self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings)
        selected = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, selected], iou_pred[:, selected]

    def upscale(self, x: torch.Tensor) -> torch.Tensor:
        """``output_upscaling`` (B×C×64×64 -> B×C/8×256×256), its transposed convolutions as matrix products."""
        for layer in self.output_upscaling:
            x = upsample_conv_transpose(x, layer) if isinstance(layer, nn.ConvTranspose2d) else layer(x)
        return x

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        hooks: DecoderHooks = NO_HOOKS,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All four outputs.

        Args:
            image_embeddings: 1×C×64×64 (shared by every prompt) or B×C×64×64 (one per prompt).
            image_pe: 1×C×64×64.
            sparse_prompt_embeddings: B×T×C; dense_prompt_embeddings: B×C×64×64.
            hooks: what the two-way transformer uses besides its weights (none by default).
        Returns:
            masks B×4×256×256, iou_pred B×4, mask_tokens_out B×4×C.
        """
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)
        src = per_prompt(image_embeddings, batch, "image_embeddings") + dense_prompt_embeddings
        b, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe, tokens, hooks)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens, :]
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        masks = self.masks_from_features(src, (h, w), hyper_in)
        iou_pred = self.iou_prediction_head(iou_token_out)
        return masks, iou_pred, mask_tokens_out

    def masks_from_features(self, src: torch.Tensor, size: tuple[int, int], hyper_in: torch.Tensor) -> torch.Tensor:
        """Upscale the transformer's image features and take their product with the hypernetwork
        outputs.

        Args:
            src: B×HW×C image features (row-major over the H×W grid), as the transformer returns them.
            size: (H, W) of the grid.
            hyper_in: B×N×C/8, one vector per mask.
        Returns:
            masks B×N×4H×4W.

        With SAM's upscaling (two 2×2 stride-2 transposed convolutions, LayerNorm2d and elementwise
        activations) the features stay in the order the matrix products leave them (each pixel's
        2×2 children next to it, channels last) and only the N masks are put in image order at
        the end; the reference lays out every intermediate B×C×H×W, which costs a copy of the
        largest tensors. Other upscaling modules go through :meth:`upscale`.
        """
        b, _, c = src.shape
        h, w = size
        if not self._fast_upscaling():
            upscaled = self.upscale(src.transpose(1, 2).reshape(b, c, h, w))
            _, c8, h4, w4 = upscaled.shape
            return (hyper_in @ upscaled.reshape(b, c8, h4 * w4)).reshape(b, -1, h4, w4)
        conv1, norm, act1, conv2, act2 = self.output_upscaling
        x = src.reshape(b * h * w, c)
        for conv, act, is_first in ((conv1, act1, True), (conv2, act2, False)):
            out_c = conv.weight.shape[1]
            # kernel (in, out, ky, kx) -> (in, ky·kx·out): each input pixel's four children, channels last
            weight = conv.weight.permute(0, 2, 3, 1).reshape(x.shape[1], 4 * out_c)
            x = torch.addmm(conv.bias.repeat(4), x, weight).reshape(-1, out_c)
            if is_first:
                x = F.layer_norm(x, (out_c,), norm.weight, norm.bias, norm.eps)
            x = act(x)
        # rows are (b, y, x, i1, j1, i2, j2): output pixel (4y + 2·i1 + i2, 4x + 2·j1 + j2)
        n = hyper_in.shape[1]
        masks = x.reshape(b, h * w * 16, -1) @ hyper_in.transpose(1, 2)
        masks = masks.reshape(b, h, w, 2, 2, 2, 2, n).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return masks.reshape(b, n, 4 * h, 4 * w)

    def _fast_upscaling(self) -> bool:
        layers = list(self.output_upscaling)
        if len(layers) != 5:
            return False
        conv1, norm, act1, conv2, act2 = layers
        return (
            all(
                isinstance(conv, nn.ConvTranspose2d)
                and conv.kernel_size == (2, 2) and conv.stride == (2, 2) and conv.padding == (0, 0)
                and conv.output_padding == (0, 0) and conv.dilation == (1, 1) and conv.groups == 1
                and conv.bias is not None
                for conv in (conv1, conv2)
            )
            and isinstance(norm, LayerNorm2d)
            and all(isinstance(a, (nn.GELU, nn.ReLU)) for a in (act1, act2))
        )
