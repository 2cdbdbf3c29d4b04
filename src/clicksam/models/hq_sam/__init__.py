"""HQ-SAM (ViT-B/L/H and the TinyViT "Light HQ-SAM"), written for clicksam on its SAM parts and
state-dict compatible with the official sam-hq files.

``FAMILY`` is the family's registry entry (read by :mod:`clicksam.registry` without importing
torch); the other names load on first use.
"""
from clicksam.lazy import lazy_exports
from clicksam.models.hq_sam.config import FAMILY, HQ_SAM_CONFIGS, HQSamConfig, get_hq_sam_config, hq_sam_from_config

_LAZY = {
    "HQ_SAM_UNUSED": "clicksam.models.hq_sam.checkpoint",
    "load_hq_sam_checkpoint": "clicksam.models.hq_sam.checkpoint",
    "FEATURE_NAMES": "clicksam.models.hq_sam.hq_sam",
    "HQSam": "clicksam.models.hq_sam.hq_sam",
    "MaskDecoderHQ": "clicksam.models.hq_sam.mask_decoder_hq",
    "TinyViT": "clicksam.models.hq_sam.tiny_vit",
}

__all__ = [
    "FAMILY",
    "HQ_SAM_CONFIGS",
    "HQ_SAM_UNUSED",
    "FEATURE_NAMES",
    "HQSam",
    "HQSamConfig",
    "MaskDecoderHQ",
    "TinyViT",
    "get_hq_sam_config",
    "hq_sam_from_config",
    "load_hq_sam_checkpoint",
]

__getattr__ = lazy_exports(__name__, _LAZY)
