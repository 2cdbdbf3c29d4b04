"""SAM 2.1 in image mode (Hiera trunk, FPN neck, SAM 2's prompt encoder and decoder), written for
clicksam and state-dict compatible with the official files.

``FAMILY`` is the family's registry entry (read by :mod:`clicksam.registry` without importing
torch); the other names load on first use.
"""
from clicksam.lazy import lazy_exports
from clicksam.models.sam2.config import FAMILY, SAM2_CONFIGS, Sam2Config, get_sam2_config, sam2_from_config

_BASE = "clicksam.models.sam2.sam2_base"
_LAZY = {
    "SAM2_VIDEO_ONLY": "clicksam.models.sam2.checkpoint",
    "load_sam2_checkpoint": "clicksam.models.sam2.checkpoint",
    "FEATURE_NAMES": _BASE,
    "Sam2": _BASE,
    "Sam2DecoderOutput": _BASE,
    "Sam2Transforms": "clicksam.models.sam2.transforms",
}

__all__ = [
    "FAMILY",
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

__getattr__ = lazy_exports(__name__, _LAZY)
