"""``OnnxDecoder``: run an exported decoder with onnxruntime, with ``SamPredictor.predict``'s API.

The image is encoded once with torch (``SamPredictor.set_image``); every click after that runs
only onnxruntime, on numpy arrays::

    predictor = clicksam.SamPredictor(clicksam.build_sam("vit_b", "sam_vit_b_01ec64.pth"))
    predictor.set_image(image)
    decoder = OnnxDecoder("decoder.onnx").set_predictor(predictor)
    masks, scores, logits = decoder.predict(point_coords=[[320, 240]], point_labels=[1])

Files exported by segment-anything's own script have the same inputs and outputs and work too.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from clicksam.onnx.export import check_family, import_onnxruntime
from clicksam.onnx.model import INPUT_NAMES, LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT, LABEL_PADDING, OUTPUT_NAMES

PathLike = Union[str, "os.PathLike[str]"]
MASK_THRESHOLD = 0.0


class OnnxDecoder:
    """Prompt encoder + mask decoder from an ONNX file, run with onnxruntime.

    Args:
        path: an ONNX file written by :func:`clicksam.onnx.export_decoder` (``clicksam export-onnx``).
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
        num_threads: intra-op threads for onnxruntime (default: onnxruntime's choice).

    Attributes:
        single_mask: True when the file returns one mask per call (exported with
            ``return_single_mask``), False when it returns all four tokens.
        metadata: the file's ``clicksam.*`` metadata (empty for files from other exporters).
    """

    def __init__(self, path: PathLike, providers: Optional[list[str]] = None, num_threads: Optional[int] = None) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX decoder {self.path} not found; write one with: clicksam export-onnx --model vit_b -o {self.path}")
        options = ort.SessionOptions()
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"num_threads must be at least 1, got {num_threads}")
            options.intra_op_num_threads = int(num_threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise RuntimeError(f"onnxruntime cannot load {self.path}: {exc}") from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if set(inputs) != set(INPUT_NAMES) or set(OUTPUT_NAMES) - set(outputs):
            raise RuntimeError(
                f"{self.path} is not a SAM decoder export: inputs {sorted(inputs)}, outputs {outputs}; "
                f"expected inputs {list(INPUT_NAMES)} and outputs {list(OUTPUT_NAMES)}"
            )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {k[len("clicksam."):]: v for k, v in meta.items() if k.startswith("clicksam.")}
        iou_shape = next(o.shape for o in self.session.get_outputs() if o.name == "iou_predictions")
        if "return_single_mask" in self.metadata:
            self.single_mask = self.metadata["return_single_mask"] == "1"
        else:
            self.single_mask = len(iou_shape) == 2 and iou_shape[1] == 1
        self.image_size = int(self.metadata.get("image_size", 1024))
        embedding_shape = inputs["image_embeddings"].shape
        self.embedding_shape = tuple(d if isinstance(d, int) else -1 for d in embedding_shape)
        self.embedding: Optional[np.ndarray] = None
        self.original_size: Optional[tuple[int, int]] = None

    def set_image_embedding(self, embedding: Any, original_size: tuple[int, int]) -> "OnnxDecoder":
        """Use an image's embedding (from ``SamPredictor.get_image_embedding()``).

        Args:
            embedding: 1×256×64×64 float array or torch tensor (any device).
            original_size: the image's size (H, W) in pixels.
        Returns:
            self, so calls can be chained.
        """
        if hasattr(embedding, "detach"):  # a torch tensor, without importing torch here
            embedding = embedding.detach().cpu().numpy()
        array = np.ascontiguousarray(np.asarray(embedding, dtype=np.float32))
        expected = self.embedding_shape
        if array.ndim != len(expected) or any(e != -1 and e != a for e, a in zip(expected, array.shape)):
            raise ValueError(f"embedding must have shape {'x'.join(str(d) for d in expected)}, got {array.shape}")
        if len(original_size) != 2 or min(int(original_size[0]), int(original_size[1])) < 1:
            raise ValueError(f"original_size must be (H, W) with positive values, got {original_size}")
        self.embedding = array
        self.original_size = (int(original_size[0]), int(original_size[1]))
        return self

    def set_predictor(self, predictor: Any) -> "OnnxDecoder":
        """Take the embedding and image size of a :class:`clicksam.SamPredictor` whose image is set."""
        if not getattr(predictor, "is_image_set", False):
            raise RuntimeError("the predictor has no image; call predictor.set_image(image) first")
        model = getattr(predictor, "model", None)
        if getattr(model, "family", None) is not None:
            check_family(model.family, getattr(model, "model_name", "?"))  # its decoder reads more than the embedding
        return self.set_image_embedding(predictor.get_image_embedding(), predictor.original_size)

    def _scale(self, xy: np.ndarray) -> np.ndarray:
        """(x, y) pixels of the original image -> the 1024 frame (as ``ResizeLongestSide``)."""
        from clicksam.transforms import preprocess_shape

        old_h, old_w = self.original_size
        new_h, new_w = preprocess_shape(old_h, old_w, self.image_size)
        scaled = np.array(xy, dtype=np.float32, copy=True)
        scaled[..., 0] = scaled[..., 0] * (new_w / old_w)
        scaled[..., 1] = scaled[..., 1] * (new_h / old_h)
        return scaled

    def build_inputs(
        self,
        point_coords: Any = None,
        point_labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
    ) -> dict[str, np.ndarray]:
        """The onnxruntime feed for prompts in original-image pixels (validated as
        ``SamPredictor.predict`` validates them).

        Args:
            point_coords: N×2 (x, y) pixels; point_labels: N (1 positive, 0 negative).
            box: 4 (x0, y0, x1, y1) pixels.
            mask_input: 1×256×256 low-res logits of a previous call.
        Returns:
            a dict keyed by :data:`~clicksam.onnx.model.INPUT_NAMES`.
        """
        from clicksam.prompts import check_prompts

        if self.embedding is None or self.original_size is None:
            raise RuntimeError("no image embedding is set; call set_predictor(predictor) or set_image_embedding(embedding, (H, W)) first")
        coords, labels, box_arr, mask_arr = check_prompts(point_coords, point_labels, box, mask_input, self.original_size)
        if coords is None and box_arr is None:
            raise ValueError("give at least one click (point_coords with point_labels) or a box")
        all_coords = [np.zeros((0, 2), np.float32)]
        all_labels = [np.zeros((0,), np.float32)]
        if coords is not None:
            all_coords.append(self._scale(coords))
            all_labels.append(labels.astype(np.float32))
        if box_arr is not None:
            all_coords.append(self._scale(box_arr.reshape(2, 2)))
            all_labels.append(np.array([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT], np.float32))
        else:
            # Without a box, SAM's prompt encoder is trained to see one padding point.
            all_coords.append(np.zeros((1, 2), np.float32))
            all_labels.append(np.array([LABEL_PADDING], np.float32))
        if mask_arr is None:
            mask = np.zeros((1, 1, 4 * self.embedding.shape[2], 4 * self.embedding.shape[3]), np.float32)
            has_mask = np.zeros(1, np.float32)
        else:
            mask, has_mask = mask_arr[None].astype(np.float32), np.ones(1, np.float32)
        return {
            "image_embeddings": self.embedding,
            "point_coords": np.concatenate(all_coords)[None].astype(np.float32),
            "point_labels": np.concatenate(all_labels)[None].astype(np.float32),
            "mask_input": mask,
            "has_mask_input": has_mask,
            "orig_im_size": np.array(self.original_size, np.float32),
        }

    def run(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the graph on a raw feed; returns (masks 1×C×H×W logits, iou 1×C, low-res 1×C×256×256)."""
        masks, iou, low_res = self.session.run(list(OUTPUT_NAMES), feed)
        return masks, iou, low_res

    def predict(
        self,
        point_coords: Any = None,
        point_labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: Optional[bool] = None,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``SamPredictor.predict`` on onnxruntime.

        Args:
            point_coords: N×2 (x, y) in original-image pixels; point_labels: N (1 positive, 0 negative).
            box: 4 (x0, y0, x1, y1) pixels.
            mask_input: 1×256×256 low-res logits from a previous call.
            multimask_output: for a four-mask file, True (the default) gives the three multimask
                outputs, False the single-mask token. A single-mask file always gives its one mask
                (chosen by SAM's rule); leave this None for it.
            return_logits: float logits instead of boolean masks.
        Returns:
            masks C×H×W (bool, or float32 logits), scores C, low-res logits C×256×256.
        """
        if self.single_mask:
            if multimask_output is not None:
                raise ValueError(
                    f"{self.path.name} was exported with --return-single-mask and always returns one mask; "
                    "call predict without multimask_output, or export without --return-single-mask"
                )
            selected = slice(0, 1)
        else:
            selected = slice(1, None) if multimask_output is None or multimask_output else slice(0, 1)
        masks, iou, low_res = self.run(self.build_inputs(point_coords, point_labels, box, mask_input))
        masks = masks[0, selected]
        if not return_logits:
            masks = masks > MASK_THRESHOLD
        return masks, iou[0, selected], low_res[0, selected]
