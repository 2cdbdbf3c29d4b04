"""SAM's transforms, without torchvision: images to the model input, prompts to the model frame,
low-res masks back to the image size.

:class:`SamTransforms` is the one object that does all of it for the SAM family (the model hands
it out, :meth:`clicksam.models.Sam.transforms`; the predictor, the embedding store, the trainer and
the methods' training use it). :class:`ResizeLongestSide` is segment-anything's resize helper
(``predictor.transform``), which it builds on.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
# Bump when anything changes between pixels and features (resize, normalisation, padding).
PREPROCESS_VERSION = "sam-resize-longest-pil-bilinear-v1"


def preprocess_shape(old_h: int, old_w: int, long_side: int) -> tuple[int, int]:
    """(h, w) after scaling so that the longest side equals ``long_side`` (rounded half up)."""
    scale = long_side * 1.0 / max(old_h, old_w)
    return int(old_h * scale + 0.5), int(old_w * scale + 0.5)


class ResizeLongestSide:
    """Scale images so their longest side is ``target_length``; move points and boxes along.

    Images are resized with PIL's antialiased bilinear filter, which is what segment-anything
    does (through torchvision's PIL path)."""

    def __init__(self, target_length: int = 1024) -> None:
        self.target_length = target_length

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """H×W×3 uint8 -> h×w×3 uint8 with max(h, w) = target_length."""
        h, w = preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        return np.array(Image.fromarray(image).resize((w, h), Image.BILINEAR))

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """...×2 (x, y) coordinates of an image of size (H, W) -> the resized frame."""
        old_h, old_w = original_size
        new_h, new_w = preprocess_shape(old_h, old_w, self.target_length)
        coords = np.array(coords, dtype=np.float64 if coords.dtype == np.float64 else np.float32, copy=True)
        coords[..., 0] = coords[..., 0] * (new_w / old_w)
        coords[..., 1] = coords[..., 1] * (new_h / old_h)
        return coords

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """...×4 XYXY boxes -> N×4 in the resized frame."""
        return self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size).reshape(-1, 4)

    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """B×3×H×W float -> resized (bilinear, antialiased); for batched GPU pipelines."""
        h, w = preprocess_shape(image.shape[2], image.shape[3], self.target_length)
        return F.interpolate(image, (h, w), mode="bilinear", align_corners=False, antialias=True)

    def apply_coords_torch(self, coords: torch.Tensor, original_size: tuple[int, ...]) -> torch.Tensor:
        old_h, old_w = original_size
        new_h, new_w = preprocess_shape(old_h, old_w, self.target_length)
        coords = coords.clone().to(torch.float)
        coords[..., 0] = coords[..., 0] * (new_w / old_w)
        coords[..., 1] = coords[..., 1] * (new_h / old_h)
        return coords

    def apply_boxes_torch(self, boxes: torch.Tensor, original_size: tuple[int, ...]) -> torch.Tensor:
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)


class SamTransforms:
    """SAM's image, prompt and mask transforms (sam2's ``SAM2Transforms`` is the shape).

    Image: H×W×3 uint8 RGB -> the channel order the weights expect (``image_format``: ``"BGR"`` for
    FocSAM's official weights) -> longest side resized to S with PIL's antialiased bilinear filter
    -> normalised with ``pixel_mean``/``pixel_std`` (0-255 scale) -> zero-padded bottom/right to
    S×S. Prompts: (x, y) original-image pixels -> the resized frame (the prompt encoder adds
    the +0.5 pixel centre). Masks: logits in the padded S frame (any grid, e.g. SAM's 256×256)
    -> the original image size.

    Args:
        image_size: S, the side of the model's square input frame.
        pixel_mean, pixel_std: per-channel statistics, in the model's channel order.
        image_format: ``"RGB"`` or ``"BGR"``, the channel order of the model's input.
    """

    family = "sam"
    version = PREPROCESS_VERSION

    def __init__(self, image_size: int = 1024, pixel_mean: Sequence[float] = PIXEL_MEAN,
                 pixel_std: Sequence[float] = PIXEL_STD, image_format: str = "RGB") -> None:
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        self.image_size = int(image_size)
        # float32 values, as the model's buffers hold them (the signature records them rounded)
        self.pixel_mean = tuple(torch.tensor(pixel_mean, dtype=torch.float32).tolist())
        self.pixel_std = tuple(torch.tensor(pixel_std, dtype=torch.float32).tolist())
        self.image_format = image_format
        self.resize = ResizeLongestSide(self.image_size)
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- sizes ------------------------------------------------------------------------------
    def input_size(self, original_size: Sequence[int]) -> tuple[int, int]:
        """(h, w) of an (H, W) image once resized into the frame (top-left aligned)."""
        return preprocess_shape(int(original_size[0]), int(original_size[1]), self.image_size)

    # -- images -----------------------------------------------------------------------------
    def resize_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """H×W×3 uint8 RGB -> h×w×3 uint8 RGB, longest side S (the training data's frame)."""
        return self.resize.apply_image(np.ascontiguousarray(rgb))

    def resize_image(self, rgb: np.ndarray) -> np.ndarray:
        """H×W×3 uint8 RGB -> h×w×3 uint8 in the model's channel order, longest side S."""
        pixels = rgb if self.image_format == "RGB" else rgb[..., ::-1]
        return self.resize.apply_image(np.ascontiguousarray(pixels))

    def _statistics(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self._stats.get(device)
        if stats is None:
            stats = (torch.tensor(self.pixel_mean, device=device).view(-1, 1, 1),
                     torch.tensor(self.pixel_std, device=device).view(-1, 1, 1))
            self._stats[device] = stats
        return stats

    def normalize_pad(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×h×w float (0-255, model channel order, already resized) -> B×3×S×S model input:
        normalised, zero-padded bottom/right."""
        mean, std = self._statistics(x.device)
        x = (x - mean) / std
        h, w = x.shape[-2:]
        return F.pad(x, (0, self.image_size - w, 0, self.image_size - h))

    def image_to_input(self, rgb: np.ndarray, device: torch.device | str = "cpu") -> tuple[torch.Tensor, tuple[int, int]]:
        """H×W×3 uint8 RGB -> (1×3×S×S float32 model input, (h, w) of the resized image)."""
        resized = self.resize_image(rgb)
        tensor = torch.as_tensor(resized, device=device).permute(2, 0, 1).contiguous()[None]
        return self.normalize_pad(tensor.float()), (int(resized.shape[0]), int(resized.shape[1]))

    def padded_batch_to_input(self, images: torch.Tensor, input_sizes: torch.Tensor) -> torch.Tensor:
        """Training batches: B×3×S×S RGB images (0-255, already resized, image b in the top-left
        ``input_sizes[b]`` = (h, w) of the frame) -> B×3×S×S model input, zero outside each image."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B×3×S×S, got {tuple(images.shape)}")
        if self.image_format == "BGR":
            images = images.flip(1)
        mean, std = self._statistics(images.device)
        size = images.shape[-1]
        sizes = input_sizes.to(images.device)
        ar = torch.arange(size, device=images.device)
        valid = (ar[None, :, None] < sizes[:, 0, None, None]) & (ar[None, None, :] < sizes[:, 1, None, None])
        x = (images.float() - mean) / std
        return torch.where(valid[:, None], x, torch.zeros((), device=x.device, dtype=x.dtype))

    # -- prompts ----------------------------------------------------------------------------
    def apply_coords(self, coords: np.ndarray, original_size: Sequence[int]) -> np.ndarray:
        """...×2 (x, y) original-image pixels -> the resized frame."""
        return self.resize.apply_coords(coords, tuple(original_size))

    def apply_boxes(self, boxes: np.ndarray, original_size: Sequence[int]) -> np.ndarray:
        """...×4 XYXY original-image boxes -> N×4 in the resized frame."""
        return self.resize.apply_boxes(boxes, tuple(original_size))

    # -- masks ------------------------------------------------------------------------------
    def postprocess_masks(self, masks: torch.Tensor, input_size: Sequence[int],
                          original_size: Sequence[int]) -> torch.Tensor:
        """B×C×g×g logits over the padded S frame (SAM's g = 256, or g = S) -> B×C×H×W logits at
        the original size: upsample to S, crop the resized (h, w) region, resize to (H, W)."""
        size = self.image_size
        low = masks.shape[-1]
        if masks.shape[-2] != low or low != size:
            if masks.shape[-2] == low and size % low == 0:
                # Upsample only the low-res rows/columns that reach the kept (unpadded) region, plus
                # one of margin so that the border interpolates as in the full upsampling; the
                # integer scale factor gives the same sample positions as ``size=(size, size)``.
                factor = size // low
                rows = min(low, math.ceil((input_size[0] - 0.5) / factor - 0.5) + 2)
                cols = min(low, math.ceil((input_size[1] - 0.5) / factor - 0.5) + 2)
                masks = F.interpolate(masks[..., :rows, :cols], scale_factor=float(factor), mode="bilinear",
                                      align_corners=False)
            else:
                masks = F.interpolate(masks, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)

    def output_low_res(self, masks: torch.Tensor) -> torch.Tensor:
        """The low-res logits a predictor hands back (and takes again as ``mask_input``): SAM's as
        they are (SAM 2 clamps its own)."""
        return masks

    # -- identity ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What these transforms do to pixels, for feature signatures (JSON-ready)."""
        return {
            "image_format": self.image_format,
            "preprocess": self.version,
            "image_size": self.image_size,
            "pixel_mean": [round(v, 6) for v in self.pixel_mean],
            "pixel_std": [round(v, 6) for v in self.pixel_std],
        }
