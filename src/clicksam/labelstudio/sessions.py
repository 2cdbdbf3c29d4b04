"""Interactive sessions per Label Studio task: the image is encoded once for all the clicks of a
task, and each Label Studio object continues one clicksam object, prompt by prompt.

Label Studio sends, with each smart-tool action, *every* dynamic region of the same type and label
(all the keypoints of "Cat", or all its rectangles). :class:`TaskSession` compares them with the
prompts it has applied to the object and replays only the difference: a new keypoint is one more
step, a moved or deleted one undoes back to it and re-applies what followed. The method's history
(FocSAM's refocused embedding, SAM-REF's state) therefore stays that of the clicks as given.

Which object a request continues:
- keypoints or rectangles whose region ids the object already has continue it (a new region id
  beside them is one more prompt; the newest rectangle is the box);
- keypoints on an object that so far has only a box continue it when the first of them lies in the
  box (grown by 10% on each side): the draw-a-box-then-click-to-refine workflow;
- keypoints with a *negative label* (``--negative-label``) refine the task's last object;
- anything else starts a new object of that label (several objects per task; accepting a
  suggestion removes its prompt regions in Label Studio, so the next ones are new).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional

import numpy as np

from clicksam.labelstudio.protocol import Prompt, PromptGroup, ProtocolError

__all__ = ["TaskSession", "TaskSessions", "TrackedObject"]

BOX_MARGIN = 0.10  # how far outside a box a first refining click may lie (fraction of its size)


@dataclass
class TrackedObject:
    """One Label Studio object: its clicksam object index and the prompts applied, in order.

    ``applied`` holds ``(slot, prompt)`` pairs, one session step each; slot is ``"point"``,
    ``"negative"`` (a keypoint with a negative label) or ``"box"``.
    """

    index: int
    to_name: str
    label: str
    applied: list[tuple[str, Prompt]] = field(default_factory=list)

    def slot(self, name: str) -> list[Prompt]:
        return [p for s, p in self.applied if s == name]


def _incoming(group: PromptGroup) -> dict[str, list[Prompt]]:
    """The request's prompts by slot (only the slots it carries; the newest rectangle is the box)."""
    slots = {"box": group.boxes[-1:], "point": group.points, "negative": group.negative_points}
    return {name: prompts for name, prompts in slots.items() if prompts}


def _inside_box(point: Prompt, box: Prompt) -> bool:
    x0, y0, x1, y1 = box.coords
    dx, dy = (x1 - x0) * BOX_MARGIN, (y1 - y0) * BOX_MARGIN
    x, y = point.coords
    return x0 - dx <= x <= x1 + dx and y0 - dy <= y <= y1 + dy


def _continues(obj: TrackedObject, group: PromptGroup) -> bool:
    """Whether the request's prompts continue ``obj`` (see the module docstring)."""
    old_points = {p.region_id for p in obj.slot("point")}
    old_boxes = {p.region_id for p in obj.slot("box")}
    evidence = False
    if group.points:
        if old_points:
            if not old_points & {p.region_id for p in group.points}:
                return False
            evidence = True
        elif old_boxes:
            evidence = _inside_box(group.points[0], obj.slot("box")[-1])
    if group.boxes:
        if old_boxes:
            if not old_boxes & {p.region_id for p in group.boxes}:
                return False
            evidence = True
        elif not evidence:
            return False
    return evidence


class TaskSession:
    """The session of one task's image: a predictor with the image set and its objects.

    Args:
        predictor: a :class:`clicksam.SamPredictor` whose image is set.
        method: the method string (validated by :class:`clicksam.InteractiveSession`).
        allow_untrained: run a stage refused without trained weights anyway (tests, benchmarks).
    """

    def __init__(self, predictor: Any, method: str, allow_untrained: bool = False) -> None:
        from clicksam.session import InteractiveSession

        self.session = InteractiveSession(predictor, method=method, allow_untrained=allow_untrained)
        self.size: tuple[int, int] = tuple(predictor.original_size)  # type: ignore[assignment]
        self.objects: list[TrackedObject] = []
        self.active: Optional[TrackedObject] = None
        self.lock = threading.Lock()

    def _target(self, group: PromptGroup) -> TrackedObject:
        if group.label is None:
            if self.active is None or self.active.to_name != group.to_name:
                raise ProtocolError("a keypoint with a negative label refines the object being drawn: place a "
                                    "positive keypoint or a rectangle first")
            return self.active
        same = [o for o in self.objects if o.to_name == group.to_name and o.label == group.label]
        if same and _continues(same[-1], group):
            return same[-1]
        index = self.session.new_object(group.label) if self.objects else 0
        obj = TrackedObject(index, group.to_name, group.label)
        self.objects.append(obj)
        return obj

    def update(self, group: PromptGroup) -> tuple[TrackedObject, np.ndarray, float]:
        """Apply a request's prompts; returns the object, its H×W bool mask and predicted IoU."""
        obj = self._target(group)
        incoming = _incoming(group)
        wanted = {(slot, p) for slot, prompts in incoming.items() for p in prompts}
        kept = [(s, p) for s, p in obj.applied if s not in incoming or (s, p) in wanted]
        added = [(s, p) for s in ("box", "point", "negative") for p in incoming.get(s, []) if (s, p) not in kept]
        desired = kept + added
        common = 0
        while common < min(len(desired), len(obj.applied)) and desired[common] == obj.applied[common]:
            common += 1
        self.session.select_object(obj.index)
        for _ in range(len(obj.applied) - common):
            self.session.undo()
        obj.applied = obj.applied[:common]
        for slot, prompt in desired[common:]:
            try:
                if prompt.kind == "box":
                    self.session.add_box(*prompt.coords)
                else:
                    self.session.add_click(prompt.coords[0], prompt.coords[1], positive=prompt.positive)
            except ValueError as exc:  # the prompt checks of clicksam.prompts, e.g. a box under one pixel
                raise ProtocolError(f"region {prompt.region_id!r}: {exc}") from None
            obj.applied.append((slot, prompt))
        self.active = obj
        score = self.session.score
        return obj, self.session.mask, float(score) if score is not None else 0.0


class TaskSessions:
    """The open task sessions (least recently used dropped beyond ``max_tasks``).

    Args:
        model: the model from :func:`clicksam.build_sam`.
        method: the method string every session runs.
        cache: the :class:`clicksam.EmbeddingCache` the predictors share (keyed as everywhere).
        max_tasks: how many task images to keep encoded in memory.
        allow_untrained: run a stage refused without trained weights anyway (tests, benchmarks).
    """

    def __init__(self, model: Any, method: str, cache: Any, max_tasks: int = 8, allow_untrained: bool = False) -> None:
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be >= 1, got {max_tasks}")
        self.model, self.method, self.cache, self.max_tasks = model, method, cache, max_tasks
        self.allow_untrained = allow_untrained
        self._sessions: "OrderedDict[Hashable, TaskSession]" = OrderedDict()
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()  # one encoder pass at a time: it already uses every core
        self.encodes = 0  # images run through the encoder (not from the cache)

    def get(self, key: Hashable, load_image: Callable[[], np.ndarray]) -> TaskSession:
        """The session of ``key`` (a task id and image), loading and encoding the image if new."""
        from clicksam.predictor import SamPredictor

        with self._lock:
            if key in self._sessions:
                self._sessions.move_to_end(key)
                return self._sessions[key]
        image = load_image()
        predictor = SamPredictor(self.model, cache=self.cache)
        with self._encode_lock:
            predictor.set_image(image)
            self.encodes += 0 if predictor.last_encode_cached else 1
        session = TaskSession(predictor, self.method, self.allow_untrained)
        with self._lock:
            session = self._sessions.setdefault(key, session)
            self._sessions.move_to_end(key)
            while len(self._sessions) > self.max_tasks:
                self._sessions.popitem(last=False)
        return session

    def forget(self, task_id: Any) -> int:
        """Drop the sessions of a task (its annotation was submitted); returns how many."""
        with self._lock:
            keys = [k for k in self._sessions if isinstance(k, tuple) and k and k[0] == task_id]
            for key in keys:
                del self._sessions[key]
        return len(keys)

    def __len__(self) -> int:
        return len(self._sessions)
