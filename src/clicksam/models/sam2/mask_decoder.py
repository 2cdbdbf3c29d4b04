"""SAM 2's prompt encoder and mask decoder, as subclasses of clicksam's SAM parts.

What SAM 2 changes (state-dict compatible with the official ``sam_prompt_encoder.*`` and
``sam_mask_decoder.*`` weights):
- box corners arrive as points with labels 2 and 3, and a padding point is always appended;
- the two-way blocks' MLPs are ``layers.0/1`` (ReLU) instead of ``lin1/lin2``;
- an object-score token before the IoU token, with an MLP head (``pred_obj_score_head``);
- a sigmoid on the IoU head;
- high-resolution skip features added inside the upscaling (``conv_s0``/``conv_s1`` project the
  stride-4 and stride-8 FPN levels; the image encoder applies them once per image);
- a single-mask output that falls back to the best multimask output when its stability is low.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.feature_bundle import per_prompt
from clicksam.models.common import MLP, upsample_conv_transpose
from clicksam.models.mask_decoder import MaskDecoder
from clicksam.models.prompt_encoder import PromptEncoder
from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.models.transformer import TwoWayTransformer


class Sam2PromptEncoder(PromptEncoder):
    """SAM's prompt encoder where labels 2 and 3 (box corners given as points) get the corner embeddings."""

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        emb = super()._embed_points(points, labels, pad)
        if pad:
            labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        labels = labels[..., None]
        emb = emb + (labels == 2) * self.point_embeddings[2].weight
        return emb + (labels == 3) * self.point_embeddings[3].weight


class Sam2TwoWayTransformer(TwoWayTransformer):
    """SAM's two-way transformer with SAM 2's MLP layout in each block (``mlp.layers.0/1``, ReLU)."""

    def __init__(self, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int, attention_downsample_rate: int = 2) -> None:
        super().__init__(depth, embedding_dim, num_heads, mlp_dim, nn.ReLU, attention_downsample_rate)
        for layer in self.layers:
            layer.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, 2)


class Sam2MaskDecoder(MaskDecoder):
    """SAM 2's mask decoder. Token order: object score, IoU, 4 mask tokens, then the prompt tokens."""

    single_mask_token_index: int = 2

    def __init__(
        self,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        stability_delta: float = 0.05,
        stability_thresh: float = 0.98,
    ) -> None:
        super().__init__(transformer_dim, transformer, num_multimask_outputs, nn.GELU, iou_head_depth, iou_head_hidden_dim)
        self.iou_prediction_head.sigmoid_output = True
        self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)
        self.pred_obj_score_head = MLP(transformer_dim, transformer_dim, 1, 3)
        self.stability_delta = stability_delta
        self.stability_thresh = stability_thresh

    def predict_masks_with_skips(
        self,
        image_embeddings: torch.Tensor,
        high_res_features: tuple[torch.Tensor, torch.Tensor],
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        hooks: DecoderHooks = NO_HOOKS,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """All four outputs.

        Args:
            image_embeddings: 1×C×64×64 (shared by every prompt) or B×C×64×64.
            high_res_features: (s0 1|B×C/8×256×256, s1 1|B×C/4×128×128), already projected by
                ``conv_s0``/``conv_s1``.
            image_pe: 1×C×64×64; sparse_prompt_embeddings: B×T×C; dense_prompt_embeddings: B×C×64×64.
            hooks: what the two-way transformer uses besides its weights (none by default).
        Returns:
            masks B×4×256×256, iou_pred B×4 (sigmoid), mask_tokens_out B×4×C, object_score_logits B×1.
        """
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)
        src = per_prompt(image_embeddings, batch, "image_embeddings") + dense_prompt_embeddings
        b, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe, tokens, hooks)
        iou_token_out = hs[:, 1, :]
        mask_tokens_out = hs[:, 2 : 2 + self.num_mask_tokens, :]
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        masks = self.masks_with_skips(src, (h, w), high_res_features, hyper_in)
        iou_pred = self.iou_prediction_head(iou_token_out)
        object_score_logits = self.pred_obj_score_head(hs[:, 0, :])
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def masks_with_skips(
        self, src: torch.Tensor, size: tuple[int, int], high_res_features: tuple[torch.Tensor, torch.Tensor], hyper_in: torch.Tensor
    ) -> torch.Tensor:
        """The masks B×N×4H×4W from the transformer's image features (B×HW×C, row-major over the
        (H, W) grid), the skips and the hypernetwork outputs (B×N×C/8).

        As :meth:`~clicksam.models.mask_decoder.MaskDecoder.masks_from_features`, the upscaling
        runs as matrix products whose rows keep each pixel's 2×2 children beside it (channels last);
        the skips are read in that order through strided views, and only the N masks are put in
        image order at the end. Other upscaling modules go through :meth:`upscale_with_skips`.
        """
        b, _, c = src.shape
        h, w = size
        if not self._fast_upscaling():
            upscaled = self.upscale_with_skips(src.transpose(1, 2).reshape(b, c, h, w), high_res_features)
            _, c8, h4, w4 = upscaled.shape
            return (hyper_in @ upscaled.reshape(b, c8, h4 * w4)).reshape(b, -1, h4, w4)
        conv1, norm, act1, conv2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        c1, c2 = conv1.weight.shape[1], conv2.weight.shape[1]
        # conv1: rows (b, y, x), columns (i1, j1, c1) -> output pixel (2y + i1, 2x + j1)
        x = torch.addmm(conv1.bias.repeat(4), src.reshape(b * h * w, c), conv1.weight.permute(0, 2, 3, 1).reshape(c, 4 * c1))
        skip1 = feat_s1.reshape(-1, c1, h, 2, w, 2).permute(0, 2, 4, 3, 5, 1)  # (b, y, x, i1, j1, c1)
        x = act1(F.layer_norm(x.reshape(b, h, w, 2, 2, c1) + skip1, (c1,), norm.weight, norm.bias, norm.eps))
        # conv2: columns (i2, j2, c2) -> output pixel (4y + 2·i1 + i2, 4x + 2·j1 + j2)
        x = torch.addmm(conv2.bias.repeat(4), x.reshape(-1, c1), conv2.weight.permute(0, 2, 3, 1).reshape(c1, 4 * c2))
        skip0 = feat_s0.reshape(-1, c2, h, 2, 2, w, 2, 2).permute(0, 2, 5, 3, 6, 4, 7, 1)  # (b, y, x, i1, j1, i2, j2, c2)
        x = act2(x.reshape(b, h, w, 2, 2, 2, 2, c2) + skip0)
        n = hyper_in.shape[1]
        masks = x.reshape(b, h * w * 16, c2) @ hyper_in.transpose(1, 2)
        masks = masks.reshape(b, h, w, 2, 2, 2, 2, n).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return masks.reshape(b, n, 4 * h, 4 * w)

    def upscale_with_skips(self, x: torch.Tensor, high_res_features: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """B×C×64×64 -> B×C/8×256×256, adding the stride-8 skip after the first transposed
        convolution and the stride-4 skip after the second (before their activations)."""
        conv1, norm, act1, conv2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        x = act1(norm(upsample_conv_transpose(x, conv1) + feat_s1))
        return act2(upsample_conv_transpose(x, conv2) + feat_s0)

    def stability_scores(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """IoU between the masks thresholded at +delta and -delta (1 when both are empty); B×N."""
        flat = mask_logits.flatten(-2)
        inter = (flat > self.stability_delta).sum(-1).float()
        union = (flat > -self.stability_delta).sum(-1).float()
        return torch.where(union > 0, inter / union, torch.ones_like(union))

    def select_outputs(
        self, masks: torch.Tensor, iou_pred: torch.Tensor, multimask_output: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens 1-3 with ``multimask_output``; else token 0, replaced (in eval mode) by the
        multimask output of highest predicted IoU when token 0's stability score is below
        ``stability_thresh``. Returns masks B×C×256×256 and IoU B×C (C = 3 or 1)."""
        if multimask_output:
            return masks[:, 1:], iou_pred[:, 1:]
        single, single_iou = masks[:, :1], iou_pred[:, :1]
        if self.training:
            return single, single_iou
        best = iou_pred[:, 1:].argmax(dim=-1)
        rows = torch.arange(masks.shape[0], device=masks.device)
        best_masks = masks[:, 1:][rows, best].unsqueeze(1)
        best_iou = iou_pred[:, 1:][rows, best].unsqueeze(1)
        stable = self.stability_scores(single) >= self.stability_thresh  # B×1
        return (
            torch.where(stable[..., None, None], single, best_masks),
            torch.where(stable, single_iou, best_iou),
        )

