"""An export-friendly wrapper of SAM's prompt encoder + mask decoder + postprocessing.

:class:`DecoderExportModule` takes its inputs the way segment-anything's ONNX decoder does (all
prompts as one padded point list, the mask input always present with a 0/1 switch, the original
image size as a tensor), so one traced graph serves every click of an interactive session. It
shares the weights of the :class:`~clicksam.models.sam.Sam` it wraps; nothing is copied.

The foundation's ``PromptEncoder`` takes points and boxes separately and decides on padding in
Python, which a traced graph cannot do; the point embedding is therefore re-implemented here with
element-wise ops (same buffers and weights, same arithmetic order, so the results are bit-equal).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.models.sam import Sam

INPUT_NAMES = (
    "image_embeddings",
    "point_coords",
    "point_labels",
    "mask_input",
    "has_mask_input",
    "orig_im_size",
)
OUTPUT_NAMES = ("masks", "iou_predictions", "low_res_masks")

# Point labels understood by the graph (SAM's convention).
LABEL_PADDING, LABEL_NEGATIVE, LABEL_POSITIVE, LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT = -1, 0, 1, 2, 3


class DecoderExportModule(nn.Module):
    """Prompt encoder + mask decoder + upscaling to the original image size, as one traceable module.

    Args:
        model: the SAM model whose weights are used (shared, not copied). Method stages attached to
            it (Stable-SAM, FocSAM, SAM-REF) are not part of this graph.
        return_single_mask: return one mask chosen by SAM's rule (see :meth:`select_single_mask`)
            instead of all four.
        hooks: decoder hooks traced into the graph (a method's key/value plugins, ``nn.Module`` s;
            see ``MethodSpec.onnx``).

    ``forward`` inputs (batch B = 1 in the exported file; the module itself accepts any B):
        image_embeddings: B×256×64×64 float32, from the image encoder.
        point_coords: B×N×2 float32 (x, y) in the 1024 frame (original pixels scaled by
            1024 / max(H, W)). Without a box, append one padding point (0, 0) with label -1.
        point_labels: B×N float32: 1 positive, 0 negative, -1 padding, 2 box top-left,
            3 box bottom-right.
        mask_input: B×1×256×256 float32 low-res logits of the previous click (any values when
            ``has_mask_input`` is 0).
        has_mask_input: 1 float32, 1.0 to use ``mask_input``, 0.0 to ignore it.
        orig_im_size: 2 float32, the original image size (H, W).

    ``forward`` outputs:
        masks: B×C×H×W float32 logits at the original size (threshold 0).
        iou_predictions: B×C float32.
        low_res_masks: B×C×256×256 float32 logits in the padded 1024 frame (feed back as
            ``mask_input``).
        C = 4 (index 0 the single-mask token, 1-3 the multimask tokens), or 1 with
        ``return_single_mask``.
    """

    def __init__(self, model: Sam, return_single_mask: bool = False, hooks: DecoderHooks = NO_HOOKS) -> None:
        super().__init__()
        self.hooks = hooks  # a method stage's decoder hooks, traced into the graph
        self.plugins = nn.ModuleList(p for _, p in sorted(hooks.kv_plugins.items()) if isinstance(p, nn.Module))
        prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        self.point_embeddings = prompt_encoder.point_embeddings
        self.not_a_point_embed = prompt_encoder.not_a_point_embed
        self.no_mask_embed = prompt_encoder.no_mask_embed
        self.mask_downscaling = prompt_encoder.mask_downscaling
        self.return_single_mask = bool(return_single_mask)
        self.image_size = int(model.image_size)
        self.embed_dim = int(prompt_encoder.embed_dim)
        self.num_mask_tokens = int(model.mask_decoder.num_mask_tokens)
        input_h, input_w = prompt_encoder.input_image_size
        self.input_h, self.input_w = int(input_h), int(input_w)
        self.register_buffer(
            "gaussian_matrix", prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.detach().clone(), persistent=False
        )
        self.register_buffer("dense_pe", prompt_encoder.get_dense_pe().detach().clone(), persistent=False)

    def embed_points(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
        """Sparse prompt embeddings of labelled points.

        Args:
            point_coords: B×N×2 (x, y) in the 1024 frame.
            point_labels: B×N float or int labels in {-1, 0, 1, 2, 3}.
        Returns:
            B×N×embed_dim.
        """
        coords = point_coords + 0.5  # to the pixel centre, as SAM
        coords = torch.stack([coords[..., 0] / self.input_w, coords[..., 1] / self.input_h], dim=-1)
        projected = (2 * coords - 1) @ self.gaussian_matrix.to(coords.dtype)
        projected = 2 * math.pi * projected
        embedding = torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)
        labels = point_labels.to(embedding.dtype).unsqueeze(-1)
        # A padding point carries no position, only the "not a point" embedding.
        embedding = embedding * (labels != LABEL_PADDING).to(embedding.dtype)
        embedding = embedding + self.not_a_point_embed.weight * (labels == LABEL_PADDING).to(embedding.dtype)
        for label, table in enumerate(self.point_embeddings):
            embedding = embedding + table.weight * (labels == label).to(embedding.dtype)
        return embedding

    def embed_mask(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        """Dense prompt embedding: the downscaled mask where ``has_mask_input`` is 1, SAM's
        "no mask" embedding where it is 0.

        Args:
            mask_input: B×1×256×256 logits; has_mask_input: 1 (or B) float of 0/1.
        Returns:
            B×embed_dim×64×64.
        """
        switch = has_mask_input.to(mask_input.dtype).reshape(-1, 1, 1, 1)
        from_mask = self.mask_downscaling(mask_input) * switch
        return from_mask + self.no_mask_embed.weight.reshape(1, -1, 1, 1) * (1 - switch)

    def select_single_mask(
        self, low_res_masks: torch.Tensor, iou_predictions: torch.Tensor, num_points: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM's single-mask rule: with at most two prompt points (one click plus its padding
        point, or a box alone) the multimask output of best predicted IoU; with three or more, the
        single-mask token (index 0).

        Args:
            low_res_masks: B×4×256×256; iou_predictions: B×4; num_points: N, padding included.
        Returns:
            low-res masks B×1×256×256 and IoU B×1.
        """
        reweight = torch.zeros(self.num_mask_tokens, dtype=iou_predictions.dtype, device=iou_predictions.device)
        reweight[0] = 1000.0
        score = iou_predictions + (num_points - 2.5) * reweight
        best = torch.argmax(score, dim=1, keepdim=True)
        iou = torch.gather(iou_predictions, 1, best)
        index = best[:, :, None, None].expand(-1, -1, low_res_masks.shape[2], low_res_masks.shape[3])
        return torch.gather(low_res_masks, 1, index), iou

    def upscale_masks(self, low_res_masks: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
        """Low-res B×C×256×256 logits -> B×C×H×W at the original size (H, W) = ``orig_im_size``.

        The resized-image size is computed in float64 exactly as
        :func:`clicksam.transforms.preprocess_shape` does, so the crop matches the predictor's.
        """
        size = self.image_size
        masks = F.interpolate(low_res_masks, (size, size), mode="bilinear", align_corners=False)
        original = orig_im_size.to(torch.float64)
        scale = size / torch.max(original)
        input_hw = torch.floor(original * scale + 0.5).to(torch.int64)
        masks = masks[..., : input_hw[0], : input_hw[1]]
        original_hw = orig_im_size.to(torch.int64)
        return F.interpolate(masks, size=(original_hw[0], original_hw[1]), mode="bilinear", align_corners=False)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """See the class docstring for shapes; returns (masks, iou_predictions, low_res_masks)."""
        sparse = self.embed_points(point_coords, point_labels)
        dense = self.embed_mask(mask_input, has_mask_input)
        low_res, iou, _ = self.mask_decoder.predict_masks(image_embeddings, self.dense_pe, sparse, dense, self.hooks)
        if self.return_single_mask:
            low_res, iou = self.select_single_mask(low_res, iou, point_coords.shape[1])
        masks = self.upscale_masks(low_res, orig_im_size)
        return masks, iou, low_res


def example_inputs(embed_dim: int = 256, grid: int = 64, num_points: int = 3) -> tuple[torch.Tensor, ...]:
    """Dummy inputs of the right shapes and dtypes for tracing (in :data:`INPUT_NAMES` order)."""
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randn(1, embed_dim, grid, grid, generator=generator),
        torch.randint(0, 1024, (1, num_points, 2), generator=generator).to(torch.float32),
        torch.randint(-1, 4, (1, num_points), generator=generator).to(torch.float32),
        torch.randn(1, 1, 4 * grid, 4 * grid, generator=generator),
        torch.tensor([1.0]),
        torch.tensor([1500.0, 2250.0]),
    )
