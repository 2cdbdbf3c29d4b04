"""clicksam: interactive segmentation on Segment Anything, with pluggable methods (Stable-SAM, FocSAM, SAM-REF).

Importing the package has no side effects; the public names load on first use.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "build_sam": "clicksam.build",
    "list_models": "clicksam.registry",
    "get_config": "clicksam.registry",
    "SamPredictor": "clicksam.predictor",
    "InteractiveSession": "clicksam.session",
    "EmbeddingCache": "clicksam.cache",
    "Click": "clicksam.prompts",
    "read_image": "clicksam.images",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from clicksam.build import build_sam
    from clicksam.cache import EmbeddingCache
    from clicksam.images import read_image
    from clicksam.predictor import SamPredictor
    from clicksam.prompts import Click
    from clicksam.registry import get_config, list_models
    from clicksam.session import InteractiveSession


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clicksam' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
