"""``InteractiveSession``: clicks and boxes in, a mask out, with undo/redo and several objects."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch

from clicksam.interaction import StepResult
from clicksam.pipeline import Pipeline
from clicksam.prompts import Click, check_box, check_point

Prompt = Union[Click, Sequence[float]]  # one step's prompt: a click, or a box (x0, y0, x1, y1)


@dataclass
class Step:
    """One entry of an object's history: the prompts so far and what they produced."""

    clicks: tuple[Click, ...]
    box: Optional[tuple[float, float, float, float]]
    result: StepResult


@dataclass
class AnnotatedObject:
    """An object being annotated: its label, method and history (``position`` steps are active)."""

    label: Optional[str] = None
    history: list[Step] = field(default_factory=list)
    position: int = 0

    @property
    def current(self) -> Optional[Step]:
        return self.history[self.position - 1] if self.position > 0 else None


class InteractiveSession:
    """Interactive segmentation of the predictor's current image.

    Coordinates are (x, y) pixels of the original image. Each click re-runs the method's
    pipeline with all clicks of the current object, feeding the previous low-res logits back as
    ``mask_input``; the first lone click uses SAM's multimask output and keeps the mask with the
    best predicted IoU.

    Args:
        predictor: a :class:`clicksam.SamPredictor` with the image set.
        method: ``"sam"`` or a ``+``-joined combination of registered methods
            (:func:`clicksam.methods.list_methods`).
        allow_untrained: run a stage that is refused without trained weights anyway (tests and
            benchmarks; its masks are meaningless).

    Example:
        >>> session = InteractiveSession(predictor, method="sam")
        >>> session.add_click(120, 80)
        >>> session.add_click(40, 200, positive=False)
        >>> session.undo(); mask = session.mask   # H×W bool
    """

    def __init__(self, predictor, method: str = "sam", allow_untrained: bool = False) -> None:
        self.predictor = predictor
        self.pipeline = Pipeline(predictor, method, allow_untrained=allow_untrained)
        self.method = self.pipeline.method
        self.objects: list[AnnotatedObject] = [AnnotatedObject()]
        self.active = 0
        self.last_latency_s: Optional[float] = None

    # -- objects --------------------------------------------------------------------------
    def new_object(self, label: Optional[str] = None) -> int:
        """Start a new object (its own history) and make it active; returns its index."""
        self.objects.append(AnnotatedObject(label=label))
        self.active = len(self.objects) - 1
        return self.active

    def select_object(self, index: int) -> None:
        if not 0 <= index < len(self.objects):
            raise ValueError(f"object index {index} out of range; this session has {len(self.objects)} object(s)")
        self.active = index

    @property
    def object(self) -> AnnotatedObject:
        return self.objects[self.active]

    # -- prompts --------------------------------------------------------------------------
    def _size(self) -> tuple[int, int]:
        if not self.predictor.is_image_set:
            raise RuntimeError("no image is set; call predictor.set_image(image) before adding clicks")
        return self.predictor.original_size

    def add_click(self, x: float, y: float, positive: bool = True) -> np.ndarray:
        """Add a click at pixel (x, y); returns the new H×W bool mask."""
        check_point(float(x), float(y), self._size())
        if not isinstance(positive, (bool, np.bool_)):
            raise ValueError(f"positive must be True or False, got {positive!r}")
        cur = self.object.current
        clicks = (cur.clicks if cur else ()) + (Click(float(x), float(y), bool(positive)),)
        return self._run(clicks, cur.box if cur else None)

    def add_box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Set the object's box (XYXY pixels; replaces an earlier box); returns the new mask."""
        box = tuple(float(v) for v in check_box((x0, y0, x1, y1), self._size()))
        cur = self.object.current
        return self._run(cur.clicks if cur else (), box)

    def _run(self, clicks: tuple[Click, ...], box) -> np.ndarray:
        obj = self.object
        start = time.perf_counter()
        result = self.pipeline.step(clicks, box, obj.current.result if obj.current else None)
        mask = result.mask
        self.last_latency_s = time.perf_counter() - start
        del obj.history[obj.position :]
        obj.history.append(Step(clicks, box, result))
        obj.position = len(obj.history)
        return mask

    # -- stored steps ---------------------------------------------------------------------------
    def step_tensors(self, index: Optional[int] = None) -> dict[str, torch.Tensor]:
        """What is needed to continue from a step of the active object, as named tensors (see
        :meth:`clicksam.pipeline.Pipeline.result_tensors`; nothing at image size).

        Args:
            index: the step (0 = the first of the history), default the current one.
        """
        obj = self.object
        index = obj.position - 1 if index is None else index
        if not 0 <= index < len(obj.history):
            raise ValueError(f"step {index} out of range; the object has {len(obj.history)} step(s)")
        return self.pipeline.result_tensors(obj.history[index].result)

    def restore(self, steps: Sequence[tuple[Prompt, Optional[Mapping[str, torch.Tensor]]]]) -> int:
        """Replace the active object's history with ``steps`` (oldest first, all of them active).

        Each step is ``(prompt, tensors)``: the prompt it added (a :class:`Click`, or a box
        ``(x0, y0, x1, y1)`` that replaces the earlier one) and what :meth:`step_tensors` gave for
        it on this image with this model, or None. A step with tensors costs no decode; one without
        is recomputed from the step before it (one decode). Returns the number of decodes.
        """
        size = self._size()
        device, moved = self.predictor.device, {}
        clicks: tuple[Click, ...] = ()
        box = None
        history: list[Step] = []
        decodes = 0
        for prompt, tensors in steps:
            if isinstance(prompt, Click):
                check_point(prompt.x, prompt.y, size)
                clicks = clicks + (prompt,)
            else:
                box = tuple(float(v) for v in check_box(tuple(prompt), size))
            if tensors is None:
                result = self.pipeline.step(clicks, box, history[-1].result if history else None)
                decodes += 1
            else:
                for t in tensors.values():  # one move per tensor object: steps sharing one still share it
                    if id(t) not in moved:
                        moved[id(t)] = t.to(device)
                result = self.pipeline.result_from_tensors({name: moved[id(t)] for name, t in tensors.items()})
            history.append(Step(clicks, box, result))
        self.object.history = history
        self.object.position = len(history)
        return decodes

    # -- history --------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return self.object.position > 0

    @property
    def can_redo(self) -> bool:
        return self.object.position < len(self.object.history)

    def undo(self) -> bool:
        """Step back once (returns False when there is nothing to undo)."""
        if not self.can_undo:
            return False
        self.object.position -= 1
        return True

    def redo(self) -> bool:
        """Step forward once (returns False when there is nothing to redo)."""
        if not self.can_redo:
            return False
        self.object.position += 1
        return True

    def reset(self) -> None:
        """Clear the active object's prompts and history."""
        self.object.history.clear()
        self.object.position = 0

    # -- state ----------------------------------------------------------------------------
    @property
    def clicks(self) -> tuple[Click, ...]:
        cur = self.object.current
        return cur.clicks if cur else ()

    @property
    def box(self) -> Optional[tuple[float, float, float, float]]:
        cur = self.object.current
        return cur.box if cur else None

    @property
    def result(self) -> Optional[StepResult]:
        cur = self.object.current
        return cur.result if cur else None

    @property
    def mask(self) -> np.ndarray:
        """H×W bool mask of the active object (all False before any prompt); computed on each read."""
        res = self.result
        return res.mask if res is not None else np.zeros(self._size(), dtype=bool)

    @property
    def logits(self) -> Optional[np.ndarray]:
        """H×W float32 logits of the active object's mask (None before any prompt); computed on
        each read from the step's frame logits (see :class:`clicksam.interaction.StepResult`)."""
        res = self.result
        return res.logits if res is not None else None

    @property
    def score(self) -> Optional[float]:
        res = self.result
        return res.score if res is not None else None
