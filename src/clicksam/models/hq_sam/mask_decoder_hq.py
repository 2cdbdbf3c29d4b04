"""HQ-SAM's mask decoder: SAM's decoder (same weights, frozen in HQ-SAM's training) plus a
High-Quality output token whose mask is computed on a feature that fuses the early encoder
feature, the image embedding and SAM's upscaled mask feature (state-dict compatible with the
official ``mask_decoder.*`` weights of the sam-hq files)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from clicksam.models.feature_bundle import per_prompt
from clicksam.models.common import MLP, LayerNorm2d, upsample_conv_transpose
from clicksam.models.mask_decoder import MaskDecoder
from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.models.transformer import TwoWayTransformer, _version


def run_upsampling(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)`` with the transposed convolutions computed as matrix products (CPU-friendly)."""
    for layer in layers:
        x = upsample_conv_transpose(x, layer) if isinstance(layer, nn.ConvTranspose2d) else layer(x)
    return x


class MaskDecoderHQ(MaskDecoder):
    """Token order: IoU, 4 SAM mask tokens, the HQ token (``hf_token``), then the prompt tokens.

    Args:
        vit_dim: channels of the early encoder feature (the ViT width, or TinyViT's third stage).
    """

    def __init__(
        self,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        vit_dim: int,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__(transformer_dim, transformer, num_multimask_outputs, nn.GELU, iou_head_depth, iou_head_hidden_dim)
        d = transformer_dim
        self.hf_token = nn.Embedding(1, d)
        self.hf_mlp = MLP(d, d, d // 8, 3)
        self.compress_vit_feat = nn.Sequential(
            nn.ConvTranspose2d(vit_dim, d, kernel_size=2, stride=2), LayerNorm2d(d), nn.GELU(),
            nn.ConvTranspose2d(d, d // 8, kernel_size=2, stride=2),
        )
        self.embedding_encoder = nn.Sequential(
            nn.ConvTranspose2d(d, d // 4, kernel_size=2, stride=2), LayerNorm2d(d // 4), nn.GELU(),
            nn.ConvTranspose2d(d // 4, d // 8, kernel_size=2, stride=2),
        )
        self.embedding_maskfeature = nn.Sequential(
            nn.Conv2d(d // 8, d // 4, 3, 1, 1), LayerNorm2d(d // 4), nn.GELU(), nn.Conv2d(d // 4, d // 8, 3, 1, 1),
        )

    def hq_features(self, image_embeddings: torch.Tensor, early_feature: torch.Tensor) -> torch.Tensor:
        """The fused image feature of the HQ mask, before the mask feature is added:
        B×C×64×64 embedding and B×vit_dim×64×64 early feature -> B×C/8×256×256.

        It depends on the image only, not on the prompts, so in inference it is kept for the last
        (embedding, early feature) pair and reused on the next click: about a quarter of a click's
        time on a CPU. The entry is keyed by both tensors (held, so their storage cannot be reused)
        and the versions of the weights that make it, so new weights or features recompute it."""
        memo_key = self._memo_key(image_embeddings, early_feature)
        memo = self.__dict__.get("_hq_features_memo")
        if memo_key is not None and memo is not None and memo[0] == memo_key:
            return memo[2]
        out = run_upsampling(self.embedding_encoder, image_embeddings) + run_upsampling(self.compress_vit_feat, early_feature)
        if memo_key is not None:
            self.__dict__["_hq_features_memo"] = (memo_key, (image_embeddings, early_feature), out)
        return out

    def _memo_key(self, *inputs: torch.Tensor) -> Optional[tuple]:
        """A key for :meth:`hq_features`'s reuse, or None where it must not reuse (gradients,
        tracing, ONNX export)."""
        params = [p for module in (self.embedding_encoder, self.compress_vit_feat) for p in module.parameters()]
        if torch.is_grad_enabled() and any(t.requires_grad for t in (*params, *inputs)):
            return None
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return None
        return (
            tuple((t.data_ptr(), tuple(t.shape), t.stride(), _version(t), t.dtype, t.device) for t in inputs),
            tuple((p.data_ptr(), _version(p)) for p in params),
            torch.is_inference_mode_enabled(),
        )

    def predict_masks_hq(
        self,
        image_embeddings: torch.Tensor,
        early_feature: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        hooks: DecoderHooks = NO_HOOKS,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All outputs.

        Args:
            image_embeddings: 1×C×64×64 (shared by every prompt) or B×C×64×64.
            early_feature: 1|B×vit_dim×64×64, the encoder's early feature.
            image_pe: 1×C×64×64; sparse_prompt_embeddings: B×T×C; dense_prompt_embeddings: B×C×64×64.
            hooks: what the two-way transformer uses besides its weights (none by default).
        Returns:
            masks B×5×256×256 (the 4 SAM tokens' masks, then the HQ token's), iou_pred B×4 (SAM's
            head, for the 4 SAM tokens), mask_tokens_out B×5×C.
        """
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight, self.hf_token.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)
        hq_features = self.hq_features(image_embeddings, early_feature)
        src = per_prompt(image_embeddings, batch, "image_embeddings") + dense_prompt_embeddings
        b, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe, tokens, hooks)
        n = self.num_mask_tokens
        mask_tokens_out = hs[:, 1 : 2 + n, :]
        upscaled = self.upscale(src.transpose(1, 2).reshape(b, c, h, w))
        upscaled_hq = self.embedding_maskfeature(upscaled) + hq_features
        _, c8, h4, w4 = upscaled.shape
        hyper_sam = torch.stack([mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        hyper_hq = self.hf_mlp(mask_tokens_out[:, n, :]).unsqueeze(1)
        masks_sam = hyper_sam @ upscaled.reshape(b, c8, h4 * w4)
        masks_hq = hyper_hq @ upscaled_hq.reshape(b, c8, h4 * w4)
        masks = torch.cat([masks_sam, masks_hq], dim=1).reshape(b, n + 1, h4, w4)
        return masks, self.iou_prediction_head(hs[:, 0, :]), mask_tokens_out

    def select_outputs(
        self, masks: torch.Tensor, iou_pred: torch.Tensor, multimask_output: bool, hq_token_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """HQ-SAM's output: one mask either way. With ``multimask_output`` the SAM mask is the
        multimask output (tokens 1-3) of highest predicted IoU, else token 0; the HQ mask is added
        to it (or returned alone with ``hq_token_only``). Returns masks B×1×256×256 and IoU B×1
        (the chosen SAM token's)."""
        n = self.num_mask_tokens
        if multimask_output:
            iou, best = iou_pred[:, 1:n].max(dim=1)
            rows = torch.arange(masks.shape[0], device=masks.device)
            sam_mask = masks[:, 1:n][rows, best].unsqueeze(1)
            iou = iou.unsqueeze(1)
        else:
            sam_mask, iou = masks[:, :1], iou_pred[:, :1]
        hq_mask = masks[:, n : n + 1]
        return (hq_mask if hq_token_only else sam_mask + hq_mask), iou
