"""Import the reference ``segment_anything`` package for parity tests.

It imports torchvision at package import time (four names); torchvision does not import beside
the CPU PyTorch build we use, so these tests insert a minimal stand-in for exactly those names.
``resize`` reproduces torchvision's PIL path (``img.resize((w, h), BILINEAR)``), which is what
segment-anything's ``ResizeLongestSide.apply_image`` runs (and segment-anything-hq's copy of it).

The reference ``sam2`` package also imports ``Normalize``, ``Resize`` and ``ToTensor`` (its
``SAM2Transforms`` scripts ``Sequential(Resize((S, S)), Normalize(mean, std))`` and runs it on a float
tensor); the stand-ins do what torchvision does on that path: ``ToTensor`` turns an H×W×C uint8 array
into a C×H×W float tensor divided by 255, ``Resize`` on a float tensor is
``interpolate(bilinear, align_corners=False, antialias=True)`` (torchvision's default antialias for
tensors since 0.17) and returns the input unchanged when it already has the size, ``Normalize`` is
``(x - mean) / std`` per channel."""
from __future__ import annotations

import sys
import types

from typing import List

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn


class _ToTensor:
    def __call__(self, pic):
        array = np.asarray(pic)
        if array.ndim == 2:
            array = array[:, :, None]
        x = torch.from_numpy(np.ascontiguousarray(array.transpose((2, 0, 1))))
        return x.to(torch.float32).div(255) if x.dtype == torch.uint8 else x


class _Resize(nn.Module):
    def __init__(self, size: List[int]) -> None:
        super().__init__()
        self.size = [int(s) for s in size]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if [x.shape[-2], x.shape[-1]] == self.size:
            return x
        batched = x.unsqueeze(0) if x.dim() == 3 else x
        out = F.interpolate(batched, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return out.squeeze(0) if x.dim() == 3 else out


class _Normalize(nn.Module):
    def __init__(self, mean: List[float], std: List[float]) -> None:
        super().__init__()
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std


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
    transforms.Normalize, transforms.Resize, transforms.ToTensor = _Normalize, _Resize, _ToTensor
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
