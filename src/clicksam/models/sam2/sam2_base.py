"""The SAM 2 image model: Hiera image encoder, prompt encoder and mask decoder (no video memory).

State-dict keys are the official ones (``image_encoder.trunk.*``, ``image_encoder.neck.*``,
``sam_prompt_encoder.*``, ``sam_mask_decoder.*``, ``no_mem_embed``); the video-only parts of the
official files are skipped by name when loading (:mod:`clicksam.models.sam2.checkpoint`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from torch import nn

from clicksam.models.feature_bundle import require_features
from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.models.sam import EMBEDDING, DecoderOutput
from clicksam.models.sam2.mask_decoder import Sam2MaskDecoder, Sam2PromptEncoder
from clicksam.models.sam2.neck import Sam2ImageEncoder
from clicksam.models.sam2.transforms import Sam2Transforms

# the feature bundle of one image (see Sam2.encode_features); the embedding has SAM's name
IMAGE_EMBED = EMBEDDING
HIGH_RES_S0 = "high_res_s0"
HIGH_RES_S1 = "high_res_s1"
FEATURE_NAMES = (IMAGE_EMBED, HIGH_RES_S0, HIGH_RES_S1)

BOX_CORNER_LABELS = (2, 3)


@dataclass
class Sam2DecoderOutput(DecoderOutput):
    """:class:`~clicksam.models.sam.DecoderOutput` plus SAM 2's object score.

    object_score_logits: B×1, > 0 when the model thinks the object is present. SAM 2's image
    predictor reports masks whatever this score says (only its video tracker blanks them), and so
    does clicksam.
    """

    object_score_logits: Optional[torch.Tensor] = None


class Sam2(nn.Module):
    """SAM 2 for single images. Method stages attach under fixed attributes as on
    :class:`~clicksam.models.sam.Sam`.

    ``prompt_encoder`` and ``mask_decoder`` name the official ``sam_prompt_encoder`` and
    ``sam_mask_decoder`` submodules, so code written for SAM finds them.
    """

    mask_threshold: float = 0.0
    family: str = "sam2"
    # the base model's own submodules; every other child is a method stage
    base_modules: tuple[str, ...] = ("image_encoder", "sam_prompt_encoder", "sam_mask_decoder")
    # the bundle entry that holds the stride-16 embedding (methods may swap it for one step)
    embedding_key: str = IMAGE_EMBED
    feature_names: tuple[str, ...] = FEATURE_NAMES
    decoder_attribute: str = "sam_mask_decoder"
    # what the bundle depends on besides the trunk and neck (see encode_features)
    extra_feature_prefixes: tuple[str, ...] = ("no_mem_embed", "sam_mask_decoder.conv_s0.", "sam_mask_decoder.conv_s1.")
    decode_options: tuple[str, ...] = ()

    def __init__(
        self,
        image_encoder: Sam2ImageEncoder,
        prompt_encoder: Sam2PromptEncoder,
        mask_decoder: Sam2MaskDecoder,
        image_size: int = 1024,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.sam_prompt_encoder = prompt_encoder
        self.sam_mask_decoder = mask_decoder
        hidden = image_encoder.neck.d_model
        # the video model's "no memory" embedding; its image predictor adds it to the stride-16 map
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self._image_size = image_size
        self.image_format = "RGB"
        self.model_name = "custom"
        self.weights_sha256: Optional[str] = None

    @property
    def prompt_encoder(self) -> Sam2PromptEncoder:
        return self.sam_prompt_encoder

    @property
    def mask_decoder(self) -> Sam2MaskDecoder:
        return self.sam_mask_decoder

    @property
    def image_size(self) -> int:
        return self._image_size

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    def stage(self, attribute: str) -> Optional[nn.Module]:
        """The method stage under ``attribute`` or None when it is not attached."""
        return self._modules.get(attribute)

    def transforms(self) -> Sam2Transforms:
        """The family's transforms for this model's frame (a square S×S resize, no padding)."""
        cached = self.__dict__.get("_transforms")
        if cached is None or cached.image_size != self.image_size:
            cached = Sam2Transforms(self.image_size)
            self.__dict__["_transforms"] = cached
        return cached

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×S×S normalised image -> the B×256×S/16×S/16 embedding alone (the decoder also needs
        the high-resolution features: see :meth:`encode_features`)."""
        return self.encode_features(x)[IMAGE_EMBED]

    def encode_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """B×3×S×S normalised image (see :class:`~clicksam.models.sam2.transforms.Sam2Transforms`) ->
        the feature bundle cached per image:

        - ``embedding``: B×256×S/16×S/16, the stride-16 FPN level plus ``no_mem_embed``;
        - ``high_res_s0``: B×32×S/4×S/4, the stride-4 level through the decoder's ``conv_s0``;
        - ``high_res_s1``: B×64×S/8×S/8, the stride-8 level through ``conv_s1``.

        As in SAM 2, the decoder's two 1×1 projections run here, once per image, not per click.
        """
        s4, s8, s16 = self.image_encoder(x)
        return {
            IMAGE_EMBED: s16 + self.no_mem_embed.reshape(1, -1, 1, 1),
            HIGH_RES_S0: self.sam_mask_decoder.conv_s0(s4),
            HIGH_RES_S1: self.sam_mask_decoder.conv_s1(s8),
        }

    def decode(
        self,
        features: Mapping[str, torch.Tensor],
        points: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
        boxes: Optional[torch.Tensor] = None,
        mask_input: Optional[torch.Tensor] = None,
        multimask_output: bool = True,
        hooks: DecoderHooks = NO_HOOKS,
    ) -> Sam2DecoderOutput:
        """Prompt encoder + mask decoder, as SAM 2's image predictor runs them.

        Args:
            features: the bundle of :meth:`encode_features` (batch 1, shared by every prompt, or B).
            points: (coords B×N×2 (x, y) in the S×S model frame, labels B×N: 1 positive,
                0 negative, -1 padding) or None.
            boxes: B×4 XYXY in the model frame or None; given to the prompt encoder as two
                corner points (labels 2, 3) before the clicks, as SAM 2 does.
            mask_input: B×1×256×256 low-res logits or None.
            multimask_output: three masks (tokens 1-3); else one (token 0, or the best multimask
                output when token 0 is unstable).
            hooks: what the decoder uses besides the weights, e.g. a method stage's key/value plugin
                for one two-way block (:class:`~clicksam.models.hooks.DecoderHooks`).
        Returns:
            low-res logits B×C×256×256 (unclamped; the predictor clamps what it returns to
            ±``low_res_logit_limit``), IoU B×C, the 4 mask tokens' outputs, all 4 masks and IoUs,
            and the object-score logits B×1.
        """
        require_features(features, FEATURE_NAMES, "Sam2")
        sparse, dense = self.sam_prompt_encoder(points=merge_box_into_points(points, boxes), boxes=None, masks=mask_input)
        masks, iou, tokens, object_scores = self.sam_mask_decoder.predict_masks_with_skips(
            features[IMAGE_EMBED],
            (features[HIGH_RES_S0], features[HIGH_RES_S1]),
            self.sam_prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            hooks,
        )
        selected, selected_iou = self.sam_mask_decoder.select_outputs(masks, iou, multimask_output)
        return Sam2DecoderOutput(selected, selected_iou, tokens, masks, iou, object_scores)

    def forward(self, *args, **kwargs):  # pragma: no cover - explicit API only
        raise RuntimeError("Sam2 has no forward(); use Sam2.encode and Sam2.decode")


def merge_box_into_points(
    points: Optional[tuple[torch.Tensor, torch.Tensor]], boxes: Optional[torch.Tensor]
) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """SAM 2's prompt layout: box corners (labels 2, 3) first, then the clicks.

    Args:
        points: (coords B×N×2, labels B×N) or None; boxes: B×4 XYXY or None (same frame).
    Returns:
        (coords B×(2+N)×2, labels B×(2+N)), the points unchanged, or None.
    """
    if boxes is None:
        return points
    corners = boxes.reshape(-1, 2, 2)
    labels = torch.tensor([BOX_CORNER_LABELS], dtype=torch.int, device=boxes.device).expand(corners.shape[0], -1)
    if points is None:
        return corners, labels
    coords, point_labels = points
    if coords.shape[0] != corners.shape[0]:
        raise ValueError(f"{corners.shape[0]} boxes but {coords.shape[0]} point sets; give one box per point set")
    return torch.cat([corners, coords.to(corners.dtype)], dim=1), torch.cat([labels, point_labels.to(labels.dtype)], dim=1)
