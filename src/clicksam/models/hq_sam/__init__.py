"""HQ-SAM (ViT-B/L/H and the TinyViT "Light HQ-SAM"), written for clicksam on its SAM parts and
state-dict compatible with the official sam-hq files."""
from clicksam.models.hq_sam.checkpoint import HQ_SAM_UNUSED, load_hq_sam_checkpoint
from clicksam.models.hq_sam.config import HQ_SAM_CONFIGS, HQSamConfig, get_hq_sam_config, hq_sam_from_config
from clicksam.models.hq_sam.hq_sam import FEATURE_NAMES, HQSam
from clicksam.models.hq_sam.mask_decoder_hq import MaskDecoderHQ
from clicksam.models.hq_sam.tiny_vit import TinyViT

__all__ = [
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
