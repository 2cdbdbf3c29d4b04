"""SAM 2.1 in image mode (Hiera trunk, FPN neck, SAM 2's prompt encoder and decoder), written for
clicksam and state-dict compatible with the official files."""
from clicksam.models.sam2.checkpoint import SAM2_VIDEO_ONLY, load_sam2_checkpoint
from clicksam.models.sam2.config import SAM2_CONFIGS, Sam2Config, get_sam2_config, sam2_from_config
from clicksam.models.sam2.sam2_base import FEATURE_NAMES, Sam2, Sam2DecoderOutput
from clicksam.models.sam2.transforms import Sam2Transforms

__all__ = [
    "SAM2_CONFIGS",
    "SAM2_VIDEO_ONLY",
    "FEATURE_NAMES",
    "Sam2",
    "Sam2Config",
    "Sam2DecoderOutput",
    "Sam2Transforms",
    "get_sam2_config",
    "load_sam2_checkpoint",
    "sam2_from_config",
]
