"""The SAM model: image encoder, prompt encoder and mask decoder, with pre/post-processing."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.image_encoder import ImageEncoderViT
from clicksam.models.mask_decoder import MaskDecoder
from clicksam.models.prompt_encoder import PromptEncoder

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass
class DecoderOutput:
    """One decoder call.

    low_res_logits: B×C×256×256 logits in the padded 1024 frame (C = 3 multimask or 1).
    iou_predictions: B×C predicted IoU.
    mask_tokens: B×4×256 transformer outputs of the four mask tokens (index 0 = single-mask token).
    all_low_res_logits: B×4×256×256, every token's mask.
    all_iou_predictions: B×4.
    """

    low_res_logits: torch.Tensor
    iou_predictions: torch.Tensor
    mask_tokens: torch.Tensor
    all_low_res_logits: torch.Tensor
    all_iou_predictions: torch.Tensor


class Sam(nn.Module):
    """Segment Anything. Optional method stages live under ``stable_sam``, ``focus_refiner``
    and ``sam_ref`` once attached (see :mod:`clicksam.methods`)."""

    mask_threshold: float = 0.0

    def __init__(
        self,
        image_encoder: ImageEncoderViT,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        pixel_mean: Sequence[float] = PIXEL_MEAN,
        pixel_std: Sequence[float] = PIXEL_STD,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)
        self.image_format = "RGB"
        self.model_name = "custom"
        self.weights_sha256: Optional[str] = None

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def image_size(self) -> int:
        return self.image_encoder.img_size

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a B×3×h×w image (0-255, longest side already resized) and zero-pad it
        bottom/right to B×3×S×S."""
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        size = self.image_size
        return F.pad(x, (0, size - w, 0, size - h))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×S×S preprocessed image -> B×256×64×64 embedding."""
        return self.image_encoder(x)

    def stage(self, attribute: str) -> Optional[nn.Module]:
        """The method stage under ``attribute`` or None when it is not attached."""
        return self._modules.get(attribute)

    def decode(
        self,
        image_embeddings: torch.Tensor,
        points: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
        boxes: Optional[torch.Tensor] = None,
        mask_input: Optional[torch.Tensor] = None,
        multimask_output: bool = True,
        use_stable_sam: bool = False,
    ) -> DecoderOutput:
        """Prompt encoder + mask decoder.

        Args:
            image_embeddings: 1×256×64×64 or B×256×64×64.
            points: (coords B×N×2 (x, y) in the 1024 frame, labels B×N) or None.
            boxes: B×4 XYXY in the 1024 frame or None.
            mask_input: B×1×256×256 low-res logits or None.
            multimask_output: three masks (tokens 1-3) instead of the single-mask token.
            use_stable_sam: route the keys/values of the 2nd block through ``self.stable_sam``.
        """
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
        plugin = None
        if use_stable_sam:
            plugin = self.stage("stable_sam")
            if plugin is None:
                raise RuntimeError("use_stable_sam=True but no Stable-SAM stage is attached; build with methods=('stable-sam',)")
        masks, iou, tokens = self.mask_decoder.predict_masks(
            image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense, kv_plugin=plugin
        )
        selected = slice(1, None) if multimask_output else slice(0, 1)
        return DecoderOutput(masks[:, selected], iou[:, selected], tokens, masks, iou)

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, ...], original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """Low-res B×C×256×256 logits -> B×C×H×W logits at the original image size (H, W)."""
        size = self.image_size
        low = masks.shape[-1]
        if masks.shape[-2] == low and size % low == 0:
            # Upsample only the low-res rows/columns that reach the kept (unpadded) region, plus
            # one of margin so that the border interpolates as in the full upsampling; the
            # integer scale factor gives the same sample positions as ``size=(size, size)``.
            factor = size // low
            rows = min(low, math.ceil((input_size[0] - 0.5) / factor - 0.5) + 2)
            cols = min(low, math.ceil((input_size[1] - 0.5) / factor - 0.5) + 2)
            masks = F.interpolate(masks[..., :rows, :cols], scale_factor=float(factor), mode="bilinear", align_corners=False)
        else:
            masks = F.interpolate(masks, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)

    def forward(self, *args, **kwargs):  # pragma: no cover - explicit API only
        raise RuntimeError("Sam has no forward(); use SamPredictor, Sam.encode and Sam.decode")
