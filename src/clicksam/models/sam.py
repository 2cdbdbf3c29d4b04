"""The SAM model: image encoder, prompt encoder and mask decoder, with pre/post-processing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import nn

from clicksam.models.feature_bundle import require_features
from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.models.image_encoder import ImageEncoderViT
from clicksam.models.mask_decoder import MaskDecoder
from clicksam.models.prompt_encoder import PromptEncoder
from clicksam.transforms import PIXEL_MEAN, PIXEL_STD, SamTransforms

# The name of the encoder's image embedding in the model's feature bundle (see ``encode_features``).
EMBEDDING = "embedding"


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
    """Segment Anything. Optional method stages are submodules under the attributes their
    method specs name, once attached (see :mod:`clicksam.methods`).

    The model family (``family = "sam"``) decides the preprocessing (:meth:`transforms`) and
    what the encoder hands over per image (:meth:`encode_features`); another family (SAM 2,
    HQ-SAM) defines its own.
    """

    mask_threshold: float = 0.0
    family: str = "sam"
    # the base model's own submodules; every other child is a method stage
    base_modules: tuple[str, ...] = ("image_encoder", "prompt_encoder", "mask_decoder")
    # the bundle entry the decoder reads (methods may swap it for one step)
    embedding_key: str = EMBEDDING
    # every entry of the feature bundle (encode_features), embedding first
    feature_names: tuple[str, ...] = (EMBEDDING,)
    # the attribute of the mask decoder (what the ``decoder`` training method fine-tunes)
    decoder_attribute: str = "mask_decoder"
    # parameters outside ``image_encoder`` that the feature bundle depends on (state-dict names or
    # prefixes ending in "."): the embedding cache's digest covers them, method files may not change them
    extra_feature_prefixes: tuple[str, ...] = ()
    # keyword options of ``decode`` beyond the common ones (HQ-SAM: "hq_token_only")
    decode_options: tuple[str, ...] = ()

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

    def transforms(self) -> SamTransforms:
        """The family's transforms for this model's frame, statistics and channel order."""
        cached = self.__dict__.get("_transforms")
        if cached is None or cached.image_format != self.image_format or cached.image_size != self.image_size:
            cached = SamTransforms(self.image_size, self.pixel_mean.flatten().tolist(),
                                   self.pixel_std.flatten().tolist(), self.image_format)
            self.__dict__["_transforms"] = cached
        return cached

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a B×3×h×w image (0-255, longest side already resized) and zero-pad it
        bottom/right to B×3×S×S (see :meth:`SamTransforms.normalize_pad`)."""
        return self.transforms().normalize_pad(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×S×S preprocessed image -> B×256×64×64 embedding."""
        return self.image_encoder(x)

    def encode_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """B×3×S×S preprocessed image -> the feature bundle cached per image: SAM's is one entry,
        ``{"embedding": B×256×64×64}``."""
        return {self.embedding_key: self.encode(x)}

    def stage(self, attribute: str) -> Optional[nn.Module]:
        """The method stage under ``attribute`` or None when it is not attached."""
        return self._modules.get(attribute)

    def decode(
        self,
        image_embeddings: Union[torch.Tensor, Mapping[str, torch.Tensor]],
        points: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
        boxes: Optional[torch.Tensor] = None,
        mask_input: Optional[torch.Tensor] = None,
        multimask_output: bool = True,
        hooks: DecoderHooks = NO_HOOKS,
    ) -> DecoderOutput:
        """Prompt encoder + mask decoder.

        Args:
            image_embeddings: 1×256×64×64 or B×256×64×64, or the feature bundle of
                :meth:`encode_features` holding it (what every family's ``decode`` takes).
            points: (coords B×N×2 (x, y) in the 1024 frame, labels B×N) or None.
            boxes: B×4 XYXY in the 1024 frame or None.
            mask_input: B×1×256×256 low-res logits or None.
            multimask_output: three masks (tokens 1-3) instead of the single-mask token.
            hooks: what the decoder uses besides SAM's weights, e.g. a method stage's key/value
                plugin for one two-way block (:class:`~clicksam.models.hooks.DecoderHooks`).
        """
        if isinstance(image_embeddings, Mapping):
            require_features(image_embeddings, self.feature_names, type(self).__name__)
            image_embeddings = image_embeddings[self.embedding_key]
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
        masks, iou, tokens = self.mask_decoder.predict_masks(
            image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense, hooks
        )
        selected = slice(1, None) if multimask_output else slice(0, 1)
        return DecoderOutput(masks[:, selected], iou[:, selected], tokens, masks, iou)

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, ...], original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """Low-res B×C×256×256 logits -> B×C×H×W logits at the original image size (H, W)
        (see :meth:`SamTransforms.postprocess_masks`)."""
        return self.transforms().postprocess_masks(masks, input_size, original_size)

    def forward(self, *args, **kwargs):  # pragma: no cover - explicit API only
        raise RuntimeError("Sam has no forward(); use SamPredictor, Sam.encode and Sam.decode")
