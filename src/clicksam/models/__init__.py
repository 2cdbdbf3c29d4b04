"""SAM's modules, written for clicksam (state-dict compatible with the official checkpoints)."""
from clicksam.models.hooks import DecoderHooks
from clicksam.models.image_encoder import ImageEncoderViT
from clicksam.models.mask_decoder import MaskDecoder
from clicksam.models.prompt_encoder import PromptEncoder
from clicksam.models.sam import DecoderOutput, Sam
from clicksam.models.transformer import TwoWayTransformer

__all__ = ["DecoderHooks", "ImageEncoderViT", "MaskDecoder", "PromptEncoder", "Sam", "DecoderOutput", "TwoWayTransformer"]
