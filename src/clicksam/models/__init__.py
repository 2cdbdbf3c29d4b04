"""The model families' modules, written for clicksam (state-dict compatible with the official
checkpoints): SAM here, SAM 2.1 in :mod:`clicksam.models.sam2`, HQ-SAM in
:mod:`clicksam.models.hq_sam`.

The names load on first use, so that the model registry can read the families' configurations
(``FAMILY`` of each sub-package) without importing torch.
"""
from clicksam.lazy import lazy_exports

_LAZY = {
    "DecoderHooks": "clicksam.models.hooks",
    "ImageEncoderViT": "clicksam.models.image_encoder",
    "MaskDecoder": "clicksam.models.mask_decoder",
    "PromptEncoder": "clicksam.models.prompt_encoder",
    "Sam": "clicksam.models.sam",
    "DecoderOutput": "clicksam.models.sam",
    "TwoWayTransformer": "clicksam.models.transformer",
}

__all__ = ["DecoderHooks", "ImageEncoderViT", "MaskDecoder", "PromptEncoder", "Sam", "DecoderOutput", "TwoWayTransformer"]

__getattr__ = lazy_exports(__name__, _LAZY)
