"""SAM 2's preprocessing and post-processing: the image is resized to a square S×S (no padding,
the aspect ratio is not kept), so the model frame spans the whole image.

Written without torchvision. :meth:`Sam2Transforms.image_to_input` does what
``sam2.utils.transforms.SAM2Transforms`` does through torchvision's tensor path (``ToTensor``,
``Resize((S, S))`` with antialiasing, ``Normalize`` with ImageNet statistics on the 0-1 scale).
The method names are those of :class:`clicksam.transforms.SamTransforms`."""
from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

SAM2_PIXEL_MEAN = (0.485, 0.456, 0.406)
SAM2_PIXEL_STD = (0.229, 0.224, 0.225)
SAM2_PREPROCESS_VERSION = "sam2-square-resize-torch-bilinear-antialias-v1"

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]


class Sam2Transforms:
    """Image, prompts and masks between the original image (H×W) and SAM 2's S×S model frame.

    Args:
        image_size: S, the side of the square model input.
        low_res_logit_limit: the predictor hands back low-res logits clamped to ± this (SAM 2's 32).
    """

    family = "sam2"
    version = SAM2_PREPROCESS_VERSION
    image_format = "RGB"

    def __init__(self, image_size: int = 1024, low_res_logit_limit: float = 32.0) -> None:
        self.image_size = int(image_size)
        self.low_res_logit_limit = low_res_logit_limit
        self.pixel_mean = SAM2_PIXEL_MEAN
        self.pixel_std = SAM2_PIXEL_STD

    # -- sizes ------------------------------------------------------------------------------
    def input_size(self, original_size: Sequence[int]) -> tuple[int, int]:
        """(h, w) of the region of the model frame the image covers: all of it."""
        return self.image_size, self.image_size

    # -- images -----------------------------------------------------------------------------
    def image_to_input(self, rgb: np.ndarray, device: Union[torch.device, str] = "cpu") -> tuple[torch.Tensor, tuple[int, int]]:
        """H×W×3 uint8 RGB -> (1×3×S×S float model input, (S, S)): resized (bilinear, antialiased)
        and normalised."""
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            found = f"shape {getattr(rgb, 'shape', None)} dtype {getattr(rgb, 'dtype', type(rgb).__name__)}"
            raise ValueError(f"expected an H×W×3 uint8 RGB image, got {found}")
        x = torch.tensor(rgb, device=device).permute(2, 0, 1).float().div(255.0)
        return self.batch_to_input(x.unsqueeze(0)), self.input_size(rgb.shape[:2])

    def batch_to_input(self, images: torch.Tensor) -> torch.Tensor:
        """B×3×H×W float RGB in [0, 1] -> B×3×S×S model input (resized, normalised)."""
        return self._normalize(self._resize(images))

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        size = (self.image_size, self.image_size)
        if tuple(images.shape[-2:]) == size:
            return images
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.pixel_mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.pixel_std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std

    def resize_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """H×W×3 uint8 RGB -> S×S×3 uint8 RGB (the same antialiased resize, rounded): the training
        data's frame, and the image ``set_torch_image`` takes."""
        x = torch.tensor(rgb).permute(2, 0, 1)[None].float()  # a copy: the array may be read-only
        return self._resize(x)[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

    resize_image = resize_rgb  # SAM 2's weights take RGB: the model's channel order is RGB

    def normalize_pad(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×S×S float RGB, 0-255, already resized to the square frame -> the model input
        (normalised; SAM 2 pads nothing). Images from :meth:`resize_rgb` differ from
        :meth:`image_to_input`'s by the rounding to uint8."""
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"SAM 2 takes the image resized to {self.image_size}x{self.image_size} (the aspect "
                             f"ratio is not kept), got {tuple(x.shape[-2:])}; use transforms.resize_rgb or image_to_input")
        return self._normalize(x / 255.0)

    def padded_batch_to_input(self, images: torch.Tensor, input_sizes: torch.Tensor) -> torch.Tensor:
        """Training batches: B×3×S×S uint8 RGB images already in the frame (:meth:`resize_rgb`;
        ``input_sizes`` is S×S for every image) -> B×3×S×S model input."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B×3×S×S, got {tuple(images.shape)}")
        if bool((input_sizes != self.image_size).any()):
            raise ValueError(f"SAM 2's frame is the whole {self.image_size}x{self.image_size} image; got input sizes "
                             f"{input_sizes.tolist()} (was the batch prepared for another model family?)")
        return self.normalize_pad(images.float())

    # -- prompts ----------------------------------------------------------------------------
    def apply_coords(self, coords: ArrayLike, original_size: Sequence[int], normalized: bool = False) -> np.ndarray:
        """...×2 (x, y) -> the model frame (float32).

        Args:
            coords: pixel coordinates of an image of size (H, W), or with ``normalized=True``
                coordinates already divided by (W, H) (SAM 2's ``normalize_coords=False`` habit).
        """
        coords = np.array(coords, dtype=np.float32)
        if not normalized:
            h, w = original_size
            coords[..., 0] = coords[..., 0] / w
            coords[..., 1] = coords[..., 1] / h
        return coords * np.float32(self.image_size)

    def apply_boxes(self, boxes: ArrayLike, original_size: Sequence[int], normalized: bool = False) -> np.ndarray:
        """...×4 XYXY boxes -> N×4 in the model frame (see :meth:`apply_coords`)."""
        corners = np.asarray(boxes, dtype=np.float32).reshape(-1, 2, 2)
        return self.apply_coords(corners, original_size, normalized).reshape(-1, 4)

    # -- masks ------------------------------------------------------------------------------
    def postprocess_masks(self, masks: torch.Tensor, input_size: Sequence[int], original_size: Sequence[int]) -> torch.Tensor:
        """Low-res B×C×g×g logits over the S×S frame -> B×C×H×W logits (bilinear, straight to the
        original size: the frame is the whole image, ``input_size`` is S×S). Give the unclamped
        logits, as SAM 2's predictor does."""
        return F.interpolate(masks.float(), tuple(int(s) for s in original_size), mode="bilinear", align_corners=False)

    def output_low_res(self, masks: torch.Tensor) -> torch.Tensor:
        """The low-res logits a predictor hands back (and takes again as ``mask_input``): clamped
        to ±``low_res_logit_limit`` as SAM 2's predictor does."""
        return masks.clamp(-self.low_res_logit_limit, self.low_res_logit_limit)

    # -- identity ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What these transforms do to pixels, for feature signatures (JSON-ready)."""
        return {
            "image_format": self.image_format,
            "preprocess": self.version,
            "image_size": self.image_size,
            "pixel_mean": list(self.pixel_mean),
            "pixel_std": list(self.pixel_std),
        }
