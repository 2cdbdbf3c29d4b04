"""The HQ-SAM model: SAM with HQ-SAM's decoder and an encoder that also gives its early feature.

Pre- and post-processing are SAM's (resize the longest side to 1024, normalise, pad; the same
:meth:`~clicksam.models.sam.Sam.preprocess` and :meth:`~clicksam.models.sam.Sam.postprocess_masks`).
"""
from __future__ import annotations

from typing import Mapping, Optional, Union

import torch

from clicksam.models.feature_bundle import require_features
from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.models.hq_sam.image_encoder import HQImageEncoderViT
from clicksam.models.hq_sam.mask_decoder_hq import MaskDecoderHQ
from clicksam.models.hq_sam.tiny_vit import TinyViT
from clicksam.models.prompt_encoder import PromptEncoder
from clicksam.models.sam import EMBEDDING, DecoderOutput, Sam

# the feature bundle of one image (see HQSam.encode_features); the embedding has SAM's name
IMAGE_EMBED = EMBEDDING
EARLY_FEATURE = "early_feature"
FEATURE_NAMES = (IMAGE_EMBED, EARLY_FEATURE)


class HQSam(Sam):
    """HQ-SAM (ViT-B/L/H or TinyViT encoder). Same attributes, transforms and state-dict layout as
    SAM, with HQ-SAM's extra decoder weights."""

    family: str = "hq-sam"
    feature_names: tuple[str, ...] = FEATURE_NAMES
    decode_options: tuple[str, ...] = ("hq_token_only",)

    def __init__(
        self,
        image_encoder: Union[HQImageEncoderViT, TinyViT],
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoderHQ,
    ) -> None:
        super().__init__(image_encoder, prompt_encoder, mask_decoder)  # type: ignore[arg-type]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×S×S preprocessed image -> the B×256×64×64 embedding alone (the decoder also needs the
        early feature: see :meth:`encode_features`)."""
        return self.image_encoder.forward_features(x)[0]

    def encode_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """B×3×S×S preprocessed image -> the feature bundle cached per image:

        - ``embedding``: B×256×64×64, SAM's embedding;
        - ``early_feature``: B×C×64×64, the encoder's early feature (ViT: the output of the first
          global-attention block, C = the ViT width; TinyViT: its second stage, C = 160).
        """
        embedding, early = self.image_encoder.forward_features(x)
        return {IMAGE_EMBED: embedding, EARLY_FEATURE: early}

    def decode(  # type: ignore[override]
        self,
        features: Mapping[str, torch.Tensor],
        points: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
        boxes: Optional[torch.Tensor] = None,
        mask_input: Optional[torch.Tensor] = None,
        multimask_output: bool = True,
        hooks: DecoderHooks = NO_HOOKS,
        hq_token_only: bool = False,
    ) -> DecoderOutput:
        """Prompt encoder + HQ-SAM's decoder, as segment-anything-hq's predictor runs them.

        Args:
            features: the bundle of :meth:`encode_features` (batch 1, shared by every prompt, or B).
            points: (coords B×N×2 (x, y) in the 1024 frame, labels B×N) or None.
            boxes: B×4 XYXY in the 1024 frame or None.
            mask_input: B×1×256×256 low-res logits or None.
            multimask_output: pick the SAM mask among the three multimask outputs by predicted IoU
                (HQ-SAM returns one mask either way) instead of the single-mask token.
            hooks: what the decoder uses besides the weights, e.g. a method stage's key/value plugin
                for one two-way block (:class:`~clicksam.models.hooks.DecoderHooks`).
            hq_token_only: return the HQ token's mask alone instead of SAM's mask plus it.
        Returns:
            low-res logits B×1×256×256 and IoU B×1; mask_tokens B×5×256 (0: single-mask token,
            1-3: multimask tokens, 4: HQ token); all_low_res_logits B×5×256×256 (same order);
            all_iou_predictions B×4 (SAM's IoU head, tokens 0-3).
        """
        require_features(features, FEATURE_NAMES, "HQSam")
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
        decoder: MaskDecoderHQ = self.mask_decoder  # type: ignore[assignment]
        masks, iou, tokens = decoder.predict_masks_hq(
            features[IMAGE_EMBED], features[EARLY_FEATURE], self.prompt_encoder.get_dense_pe(), sparse, dense,
            hooks,
        )
        selected, selected_iou = decoder.select_outputs(masks, iou, multimask_output, hq_token_only)
        return DecoderOutput(selected, selected_iou, tokens, masks, iou)
