"""Loading official SAM 2.1 ``.pt`` files as they are: the weights are under the ``model`` key;
the video-only parts are skipped by name, everything else loads strictly."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from clicksam.models.official_files import StateDict, load_official_file
from clicksam.models.sam2.config import SAM2_CONFIGS, SAM2_FAMILY, sam2_from_config
from clicksam.models.sam2.sam2_base import Sam2

# Parts of SAM2Base that only the video predictor runs (memory attention and encoder, object
# pointers, temporal encodings, the mask downsampler for memory). Exact parameter names, or module
# prefixes ending in a dot.
SAM2_VIDEO_ONLY = (
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "no_obj_embed_spatial",
    "memory_attention.",
    "memory_encoder.",
    "mask_downsample.",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
)


def sam2_state_dict(obj: Any, path: Path) -> StateDict:
    """The state dict of an official SAM 2 file (a dict whose ``model`` entry holds the weights)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        found = sorted(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path}: an official SAM 2 file holds its weights under the 'model' key; found {found}")
    return obj["model"]


def load_sam2_checkpoint(model: Sam2, path: Path, trust_checkpoint: bool = False) -> list[str]:
    """Load an official SAM 2.1 file into ``model`` (strict; video-only parts skipped).

    Returns:
        the skipped keys of the file.
    """
    return load_official_file(
        model, path, family=SAM2_FAMILY, configs=SAM2_CONFIGS, build=sam2_from_config,
        extract=sam2_state_dict, ignored=SAM2_VIDEO_ONLY, trust_checkpoint=trust_checkpoint,
    )
