"""SAM 2's preprocessing and post-processing: the image is resized to a square S×S (no padding,
the aspect ratio is not kept), so the model frame spans the whole image.

Written without torchvision. ``prepare_image`` does what ``sam2.utils.transforms.SAM2Transforms``
does through torchvision's tensor path (``ToTensor``, ``Resize((S, S))`` with antialiasing,
``Normalize`` with ImageNet statistics on the 0-1 scale)."""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

SAM2_PIXEL_MEAN = (0.485, 0.456, 0.406)
SAM2_PIXEL_STD = (0.229, 0.224, 0.225)

ArrayLike = Union[np.ndarray, torch.Tensor]


class Sam2Transforms:
    """Image, prompts and masks between the original image (H×W) and SAM 2's S×S model frame."""

    def __init__(self, resolution: int = 1024, low_res_logit_limit: float = 32.0) -> None:
        self.resolution = resolution
        self.low_res_logit_limit = low_res_logit_limit
        self.mean = torch.tensor(SAM2_PIXEL_MEAN).view(-1, 1, 1)
        self.std = torch.tensor(SAM2_PIXEL_STD).view(-1, 1, 1)

    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the region of the model frame the image covers: all of it."""
        return self.resolution, self.resolution

    def prepare_image(self, image: np.ndarray, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
        """H×W×3 uint8 RGB -> 1×3×S×S float, resized (bilinear, antialiased) and normalised."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
        x = torch.tensor(image, device=device).permute(2, 0, 1).float().div(255.0)
        return self.prepare_tensor(x.unsqueeze(0))

    def prepare_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """B×3×H×W float in [0, 1] -> B×3×S×S resized (bilinear, antialiased) and normalised."""
        size = (self.resolution, self.resolution)
        x = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean.to(x)) / self.std.to(x)

    def apply_coords(self, coords: ArrayLike, original_size: tuple[int, int], normalized: bool = False) -> torch.Tensor:
        """...×2 (x, y) -> the model frame.

        Args:
            coords: pixel coordinates of an image of size (H, W), or with ``normalized=True``
                coordinates already divided by (W, H) (SAM 2's ``normalize_coords=False`` habit).
        """
        coords = torch.as_tensor(coords, dtype=torch.float).clone()
        if not normalized:
            h, w = original_size
            coords[..., 0] = coords[..., 0] / w
            coords[..., 1] = coords[..., 1] / h
        return coords * self.resolution

    def apply_boxes(self, boxes: ArrayLike, original_size: tuple[int, int], normalized: bool = False) -> torch.Tensor:
        """...×4 XYXY boxes -> N×4 in the model frame (see :meth:`apply_coords`)."""
        corners = torch.as_tensor(boxes, dtype=torch.float).reshape(-1, 2, 2)
        return self.apply_coords(corners, original_size, normalized).reshape(-1, 4)

    def postprocess_masks(self, masks: torch.Tensor, original_size: tuple[int, int]) -> torch.Tensor:
        """Low-res B×C×256×256 logits -> B×C×H×W logits (bilinear), from unclamped logits."""
        return F.interpolate(masks.float(), tuple(original_size), mode="bilinear", align_corners=False)

    def output_low_res(self, masks: torch.Tensor) -> torch.Tensor:
        """The low-res logits a predictor hands back (and takes again as ``mask_input``): clamped
        to ±``low_res_logit_limit`` as SAM 2's predictor does."""
        return masks.clamp(-self.low_res_logit_limit, self.low_res_logit_limit)
