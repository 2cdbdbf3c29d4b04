"""SAM and its methods (any registered method and combinations) as a :class:`Segmenter`.

Each step goes through :class:`clicksam.pipeline.Pipeline` with every click so far and the
previous step's result, exactly as :class:`clicksam.InteractiveSession` does: SAM's three-mask
output with the best predicted IoU on a lone first click, the single-mask token afterwards, and the
previous 256x256 low-res logits fed back as ``mask_input``. Scores are logits (threshold 0).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .segmenter import Prompt, Segmenter, SegmenterOutput

__all__ = ["SamSegmenter", "build_sam_segmenter"]


class SamSegmenter(Segmenter):
    """Adapter from a :class:`clicksam.SamPredictor` and a method string to the segmenter interface.

    Args:
        predictor: a ``SamPredictor`` (give it an ``EmbeddingCache`` to reuse embeddings across runs).
        method: ``sam`` or a ``+``-joined combination of registered methods.
        allow_untrained: run a stage that is refused without trained weights anyway (tests).
    """

    threshold = 0.0

    def __init__(self, predictor: Any, method: str = "sam", allow_untrained: bool = False) -> None:
        from clicksam.pipeline import Pipeline

        self.predictor = predictor
        self.pipeline = Pipeline(predictor, method, allow_untrained=allow_untrained)
        self.method = self.pipeline.method
        self.name = self.method
        self.last_encode_seconds = 0.0

    def set_image(self, image: np.ndarray, image_id: str) -> None:
        start = time.perf_counter()
        self.predictor.set_image(image)
        self.last_encode_seconds = time.perf_counter() - start

    def step(self, prompt: Prompt, prev_state: Any = None) -> SegmenterOutput:
        result = self.pipeline.step(prompt.clicks, prompt.box, prev_state)
        return SegmenterOutput(result.logits, state=result)

    def describe(self) -> dict[str, Any]:
        model = self.predictor.model
        return {
            "segmenter": "sam",
            "method": self.method,
            "threshold": self.threshold,
            "model": getattr(model, "model_name", None),
            "weights_sha256": getattr(model, "weights_sha256", None),
        }


def build_sam_segmenter(model_name: str, checkpoints: Sequence[str | Path] = (), method: str = "sam",
                        device: str = "cpu", cache_dir: str | Path | None = None,
                        random_weights: bool = False, trust_checkpoint: bool = False) -> SamSegmenter:
    """Build the model, a predictor (memory LRU embedding cache, on disk under ``cache_dir`` if
    given) and the adapter.

    Args:
        model_name: registry name (``vit_b``, ``vit_l``, ``vit_h``, ``tiny``).
        checkpoints: checkpoint files, base first then method files (none: the cached official file).
        method: the method string; stages it names that no checkpoint provides are attached untrained.
        device: torch device.
        cache_dir: folder of the on-disk embedding cache, or None for memory only.
        random_weights: a real size with random weights on purpose (see :func:`clicksam.build_sam`).
        trust_checkpoint: allow checkpoints holding pickled objects (the official FocSAM file).
    """
    import clicksam
    from clicksam.cache import EmbeddingCache
    from clicksam.methods import parse_method

    model = clicksam.build_sam(model_name, checkpoint=list(checkpoints) or None,
                               methods=parse_method(method), device=device, random_weights=random_weights,
                               trust_checkpoint=trust_checkpoint)
    predictor = clicksam.SamPredictor(model, cache=EmbeddingCache(cache_dir, max_items=4))
    return SamSegmenter(predictor, method)
