"""``SamPredictor``: segment-anything's predictor API on clicksam's models, of every family (SAM,
SAM 2.1, HQ-SAM): the model hands over its family's transforms and feature bundle.

One road from prompts to masks (segment-anything's ``predict`` -> ``predict_torch``): prompts in
original-image pixels go to the model frame in :meth:`SamPredictor.model_prompts`, the decoder runs
in :meth:`SamPredictor.decode`, and logits go back to the image size in
:meth:`SamPredictor.postprocess`. ``predict``/``predict_torch`` keep segment-anything's signatures;
the interaction engine (:mod:`clicksam.interaction`) uses the same three steps with its extras
(an embedding override, decoder hooks, the mask tokens).
"""
from __future__ import annotations

from typing import Mapping, Optional, Union

import numpy as np
import torch

from clicksam.cache import CachedFeatures, EmbeddingCache, EmbeddingSignature, feature_signature
from clicksam.images import as_rgb_uint8, image_digest
from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.models.sam import DecoderOutput, Sam
from clicksam.transforms import ResizeLongestSide, SamTransforms

Points = Optional[tuple[torch.Tensor, torch.Tensor]]


class SamPredictor:
    """Encode an image once, then predict masks for any number of prompts.

    Works for every model family: SAM (resize the longest side, pad), SAM 2.1 (resize to a square;
    its low-res logits come back clamped to ±32 as SAM 2's predictor returns them; ``predict``
    takes its ``normalize_coords``) and HQ-SAM (one mask per prompt; ``hq_token_only``).

    Args:
        sam_model: the model (see :func:`clicksam.build_sam`).
        cache: optional :class:`~clicksam.cache.EmbeddingCache`; ``set_image`` then never re-runs the
            encoder for an image it has seen with the same model, weights and preprocessing (the
            whole feature bundle is cached, e.g. SAM 2's three levels).

    Attributes:
        image_features: the current image's feature bundle (name -> tensor; SAM:
            ``{"embedding": 1×256×64×64}``; SAM 2 adds ``high_res_s0``/``high_res_s1``, HQ-SAM
            ``early_feature``), or None.
        features: the bundle's image embedding (segment-anything's attribute).
        input_image: 1×3×S×S model input of the current image (None after ``set_image_embedding``).
        original_size: (H, W) of the image; input_size: (h, w) of the image in the model frame
            (SAM: the resized image, top-left; SAM 2: the whole S×S frame).
    """

    def __init__(self, sam_model: Sam, cache: Optional[EmbeddingCache] = None) -> None:
        self.model = sam_model
        self.cache = cache
        self.reset_image()

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def transforms(self) -> SamTransforms:
        """The model family's transforms (image, prompts, masks) for this model."""
        return self.model.transforms()

    @property
    def transform(self) -> ResizeLongestSide:
        """segment-anything's resize helper (``apply_image``, ``apply_coords``, ``apply_boxes``), for
        the families that resize the longest side (SAM, HQ-SAM)."""
        resize = getattr(self.transforms, "resize", None)
        if resize is None:
            raise AttributeError(f"{self.model.family} models do not resize the longest side, so there is no "
                                 "ResizeLongestSide; use predictor.transforms (apply_coords, apply_boxes, image_to_input)")
        return resize

    @property
    def features(self) -> Optional[torch.Tensor]:
        """The image embedding of the current image (1×256×64×64 for SAM), or None."""
        return None if self.image_features is None else self.image_features[self.model.embedding_key]

    @features.setter
    def features(self, embedding: torch.Tensor) -> None:
        self.image_features = {**(self.image_features or {}), self.model.embedding_key: embedding}

    def reset_image(self) -> None:
        """Forget the current image and its features."""
        self.is_image_set = False
        self.image_features: Optional[dict[str, torch.Tensor]] = None
        self.original_size: Optional[tuple[int, int]] = None
        self.input_size: Optional[tuple[int, int]] = None
        self.input_image: Optional[torch.Tensor] = None  # 1×3×S×S normalised, padded
        self.image_rgb: Optional[np.ndarray] = None
        self.last_encode_cached = False

    # -- images ------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Compute (or fetch from the cache) the features of an H×W×3 uint8 image.

        Args:
            image: H×W×3 uint8 in ``image_format`` channel order (grayscale and RGBA are
                converted with a warning; other dtypes are refused with the conversion to do).
            image_format: ``"RGB"`` or ``"BGR"``.
        """
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        image = as_rgb_uint8(image)
        rgb = image if image_format == "RGB" else image[..., ::-1]
        model_input, input_size = self.transforms.image_to_input(rgb, self.device)
        signature = hit = None
        if self.cache is not None:
            signature = self.signature(rgb)
            hit = self.cache.get(signature)
        self._set_input(model_input, input_size, image.shape[:2])
        self.image_rgb = rgb
        if hit is not None:
            self.image_features = {name: t.to(self.device) for name, t in hit.features.items()}
            self.last_encode_cached = True
            return
        self._encode()
        if signature is not None:
            features = {name: t.cpu() for name, t in self.image_features.items()}
            self.cache.put(signature, CachedFeatures(features, self.original_size, self.input_size))

    def signature(self, rgb: np.ndarray) -> EmbeddingSignature:
        """The cache signature of an RGB image for this predictor's model."""
        return EmbeddingSignature(image_digest(rgb), feature_signature(self.model))

    def _set_input(self, model_input: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, ...]) -> None:
        self.reset_image()
        self.original_size = (int(original_size[0]), int(original_size[1]))
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.input_image = model_input
        self.is_image_set = True

    @torch.no_grad()
    def _encode(self) -> None:
        self.image_features = self.model.encode_features(self.input_image)

    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]) -> None:
        """Encode a 1×3×h×w image already resized into the model frame (0-255 values, the model's
        channel order): SAM's longest side S (``predictor.transform.apply_image``), SAM 2's S×S
        square (``predictor.transforms.resize_rgb``)."""
        if transformed_image.ndim != 4 or transformed_image.shape[1] != 3 or max(transformed_image.shape[2:]) != self.model.image_size:
            raise ValueError(
                f"set_torch_image expects a 1x3xhxw tensor with longest side {self.model.image_size}, "
                f"got shape {tuple(transformed_image.shape)}; resize it with predictor.transforms.resize_image first"
            )
        model_input = self.transforms.normalize_pad(transformed_image.float())
        self._set_input(model_input, tuple(transformed_image.shape[-2:]), original_image_size)
        self._encode()

    def get_image_embedding(self) -> torch.Tensor:
        """The current image's 1×256×64×64 embedding."""
        self._require_image()
        return self.features

    def set_image_embedding(
        self,
        embedding: Union[torch.Tensor, Mapping[str, torch.Tensor]],
        original_size: tuple[int, int],
        input_size: Optional[tuple[int, int]] = None,
    ) -> None:
        """Use precomputed features of an image of size (H, W): SAM's 1×256×64×64 embedding, or
        the whole feature bundle (``predictor.image_features``; needed by SAM 2 and HQ-SAM)."""
        bundle = dict(embedding) if isinstance(embedding, Mapping) else {self.model.embedding_key: embedding}
        missing = [name for name in self.model.feature_names if name not in bundle]
        if missing:
            raise ValueError(f"{self.model.family} models decode from the feature bundle {list(self.model.feature_names)}; "
                             f"{missing} missing. Pass predictor.image_features of a predictor on the same model")
        main = bundle[self.model.embedding_key]
        if not isinstance(main, torch.Tensor) or main.ndim != 4 or main.shape[0] != 1:
            raise ValueError(f"embedding must be a 1x256x64x64 tensor, got {getattr(main, 'shape', type(main))}")
        grid = self.model.prompt_encoder.image_embedding_size
        if tuple(main.shape[1:]) != (self.model.prompt_encoder.embed_dim, *grid):
            raise ValueError(f"embedding must have shape 1x{self.model.prompt_encoder.embed_dim}x{grid[0]}x{grid[1]}, got {tuple(main.shape)}")
        odd = [name for name, t in bundle.items() if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[0] != 1]
        if odd:
            raise ValueError(f"feature bundle entries {odd} must be 1×C×H×W tensors (one image)")
        self.reset_image()
        self.original_size = (int(original_size[0]), int(original_size[1]))
        self.input_size = tuple(input_size) if input_size is not None else self.transforms.input_size(self.original_size)
        self.image_features = {name: t.to(self.device) for name, t in bundle.items()}
        self.is_image_set = True

    def transform_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of an (H, W) image in the model frame."""
        return self.transforms.input_size(original_size)

    def _require_image(self) -> None:
        if not self.is_image_set:
            raise RuntimeError("no image is set; call set_image(image) (or set_image_embedding) before predicting")

    # -- the one road: prompts -> model frame -> decoder -> image size ---------------------------
    def model_prompts(
        self,
        point_coords: Optional[np.ndarray] = None,
        point_labels: Optional[np.ndarray] = None,
        box: Optional[np.ndarray] = None,
    ) -> tuple[Points, Optional[torch.Tensor]]:
        """Validated prompts in original-image pixels -> model-frame tensors on the device.

        Args:
            point_coords: N×2 float32 (x, y); point_labels: N (1 positive, 0 negative, -1 padding).
            box: 4 or 1×4 float32 XYXY.
        Returns:
            ``(points, boxes)``: ``(coords 1×N×2, labels 1×N int)`` or None, and boxes 1×4 or None.
        """
        points = boxes = None
        if point_coords is not None:
            coords = self.transforms.apply_coords(point_coords, self.original_size)
            points = (torch.as_tensor(coords, dtype=torch.float, device=self.device)[None],
                      torch.as_tensor(point_labels, dtype=torch.int, device=self.device)[None])
        if box is not None:
            boxes = torch.as_tensor(self.transforms.apply_boxes(box, self.original_size), dtype=torch.float,
                                    device=self.device)
        return points, boxes

    @torch.no_grad()
    def decode(
        self,
        points: Points = None,
        boxes: Optional[torch.Tensor] = None,
        mask_input: Optional[torch.Tensor] = None,
        multimask_output: bool = True,
        embedding: Optional[torch.Tensor] = None,
        hooks: DecoderHooks = NO_HOOKS,
        hq_token_only: bool = False,
    ) -> DecoderOutput:
        """Prompt encoder + mask decoder on the current image, prompts already in the model frame.

        Args:
            points: (coords B×N×2, labels B×N) or None; boxes: B×4 or None; mask_input: B×1×256×256.
            multimask_output: the three multimask outputs instead of the single-mask token (HQ-SAM:
                its one mask on the best of them).
            embedding: decode on this embedding instead of the image's (e.g. a refocused one); the
                bundle's other entries (SAM 2's skips, HQ-SAM's early feature) stay the image's.
            hooks: decoder hooks of this call (e.g. a method stage's key/value plugin).
            hq_token_only: HQ-SAM only: the HQ token's mask alone.
        Returns:
            the model's :class:`~clicksam.models.sam.DecoderOutput` (low-res logits, unclamped,
            IoU, mask tokens).
        """
        self._require_image()
        features = self.image_features if embedding is None else {**self.image_features, self.model.embedding_key: embedding}
        options = {}
        if hq_token_only:
            if "hq_token_only" not in self.model.decode_options:
                raise ValueError(f"hq_token_only applies to HQ-SAM models; this is a {self.model.family} model "
                                 f"({self.model.model_name})")
            options["hq_token_only"] = True
        return self.model.decode(features, points, boxes, mask_input, multimask_output, hooks, **options)

    @torch.no_grad()
    def postprocess(self, logits: torch.Tensor) -> torch.Tensor:
        """B×C×g×g logits over the padded model frame (g = 256 low-res, or the frame itself) ->
        B×C×H×W logits at the image size: the one place logits go back to the image."""
        self._require_image()
        return self.transforms.postprocess_masks(logits, self.input_size, self.original_size)

    def output_low_res(self, logits: torch.Tensor) -> torch.Tensor:
        """The low-res logits handed back to the caller (and taken again as ``mask_input``): SAM's as
        they are, SAM 2's clamped to ±32 (its predictor's habit). Masks come from the unclamped ones."""
        return self.transforms.output_low_res(logits)

    def predict(
        self,
        point_coords: Optional[np.ndarray] = None,
        point_labels: Optional[np.ndarray] = None,
        box: Optional[np.ndarray] = None,
        mask_input: Optional[np.ndarray] = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
        hq_token_only: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict masks for prompts in original-image pixels.

        Args:
            point_coords: N×2 (x, y); point_labels: N (1 positive, 0 negative).
            box: 4 (x0, y0, x1, y1).
            mask_input: 1×256×256 low-res logits from a previous call.
            normalize_coords: SAM 2's switch: True (default) for pixel coordinates; False for
                coordinates already divided by the image's (W, H), i.e. in [0, 1].
            hq_token_only: HQ-SAM only: the HQ token's mask alone (segment-anything-hq's switch).
        Returns:
            masks C×H×W (bool, or float logits with ``return_logits``), scores C, low-res logits
            C×256×256 (C = 3 with ``multimask_output``, else 1; always 1 for HQ-SAM).
        """
        from clicksam.prompts import check_prompts

        self._require_image()
        if not normalize_coords:
            point_coords, box = self._relative_to_pixels(point_coords, box)
        coords, labels, box_arr, mask_arr = check_prompts(point_coords, point_labels, box, mask_input, self.original_size)
        points, boxes = self.model_prompts(coords, labels, box_arr)
        coords_t, labels_t = points if points is not None else (None, None)
        mask_t = None if mask_arr is None else torch.as_tensor(mask_arr, dtype=torch.float, device=self.device)[None]
        masks, scores, low_res = self.predict_torch(coords_t, labels_t, boxes, mask_t, multimask_output, return_logits,
                                                    hq_token_only=hq_token_only)
        return masks[0].cpu().numpy(), scores[0].float().cpu().numpy(), low_res[0].float().cpu().numpy()

    @torch.no_grad()
    def predict_torch(
        self,
        point_coords: Optional[torch.Tensor],
        point_labels: Optional[torch.Tensor],
        boxes: Optional[torch.Tensor] = None,
        mask_input: Optional[torch.Tensor] = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        hq_token_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched prediction with prompts already in the model frame (SAM: the 1024 frame of the
        resized image; SAM 2: the S×S square; see ``predictor.transforms.apply_coords``).

        Args:
            point_coords: B×N×2 (x, y); point_labels: B×N; boxes: B×4; mask_input: B×1×256×256.
            hq_token_only: HQ-SAM only: the HQ token's mask alone.
        Returns:
            masks B×C×H×W, iou predictions B×C, low-res logits B×C×256×256 (see :meth:`output_low_res`).
        """
        self._require_image()
        if (point_coords is None) != (point_labels is None):
            raise ValueError("point_coords and point_labels must be given together")
        points = (point_coords, point_labels) if point_coords is not None else None
        out = self.decode(points, boxes, mask_input, multimask_output, hq_token_only=hq_token_only)
        masks = self.postprocess(out.low_res_logits)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, out.iou_predictions, self.output_low_res(out.low_res_logits)

    def _relative_to_pixels(self, point_coords, box) -> tuple:
        """Coordinates given as fractions of the image's (W, H) -> pixels (``normalize_coords=False``)."""
        h, w = self.original_size
        scale = np.array([w, h], dtype=np.float64)
        if point_coords is not None:
            point_coords = np.asarray(point_coords, dtype=np.float64) * scale
        if box is not None:
            box = (np.asarray(box, dtype=np.float64).reshape(-1, 2) * scale).reshape(np.shape(box))
        return point_coords, box

