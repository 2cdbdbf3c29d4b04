"""Loading official HQ-SAM ``.pth`` files as they are: a raw state dict (SAM's keys plus HQ-SAM's
decoder keys), loaded strictly; only the TinyViT file's ImageNet classifier head, which the
segmentation model never runs, is skipped by name."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from clicksam.models.hq_sam.config import HQ_SAM_CONFIGS, HQ_SAM_FAMILY, hq_sam_from_config
from clicksam.models.hq_sam.hq_sam import HQSam
from clicksam.models.official_files import StateDict, load_official_file

# TinyViT's classification head (MobileSAM keeps it in its state dict; nothing reads it)
HQ_SAM_UNUSED = ("image_encoder.head.", "image_encoder.norm_head.")


def hq_sam_state_dict(obj: Any, path: Path) -> StateDict:
    """The state dict of an official HQ-SAM file (a raw dict of tensors)."""
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (an official HQ-SAM file), found {type(obj).__name__}")
    return obj


def load_hq_sam_checkpoint(model: HQSam, path: Path, trust_checkpoint: bool = False) -> list[str]:
    """Load an official HQ-SAM file into ``model`` (strict; TinyViT's classifier head skipped).

    Returns:
        the skipped keys of the file.
    """
    return load_official_file(
        model, path, family=HQ_SAM_FAMILY, configs=HQ_SAM_CONFIGS, build=hq_sam_from_config,
        extract=hq_sam_state_dict, ignored=HQ_SAM_UNUSED, trust_checkpoint=trust_checkpoint,
    )
