"""Import the reference ``segment_anything`` package for parity tests.

It imports torchvision at package import time (four names); torchvision does not import beside
the CPU PyTorch build we use, so these tests insert a minimal stand-in for exactly those names.
``resize`` reproduces torchvision's PIL path (``img.resize((w, h), BILINEAR)``), which is what
segment-anything's ``ResizeLongestSide.apply_image`` runs."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest


def _install_torchvision_stand_in() -> None:
    if "torchvision" in sys.modules and getattr(sys.modules["torchvision"], "_clicksam_stand_in", False):
        return
    from PIL import Image

    def to_pil_image(image):
        return Image.fromarray(np.asarray(image))

    def resize(image, size):
        h, w = size
        return image.resize((w, h), Image.BILINEAR)

    def _unused(*_args, **_kwargs):  # the automatic mask generator is never used in these tests
        raise NotImplementedError("torchvision stand-in: only resize/to_pil_image are provided")

    tv = types.ModuleType("torchvision")
    tv._clicksam_stand_in = True
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.resize, functional.to_pil_image = resize, to_pil_image
    ops = types.ModuleType("torchvision.ops")
    boxes = types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms, boxes.box_area = _unused, _unused
    tv.transforms, transforms.functional, tv.ops, ops.boxes = transforms, functional, ops, boxes
    sys.modules.update({
        "torchvision": tv,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
        "torchvision.ops": ops,
        "torchvision.ops.boxes": boxes,
    })


def reference_sam():
    """The ``segment_anything`` module (skips the test when the package is not installed)."""
    pytest.importorskip("PIL")
    try:
        import importlib.util

        if importlib.util.find_spec("segment_anything") is None:
            pytest.skip("the reference segment-anything package is not installed (pip install -e '.[dev]')")
    except ValueError:
        pass
    _install_torchvision_stand_in()
    import segment_anything

    return segment_anything
