"""A model-free session factory for the annotator's API tests (disks around clicks)."""
from __future__ import annotations

import hashlib
import threading
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from clicksam.server.backend import MethodOption, all_method_names


class FakeSession:
    """Mask = disks of radius 12 around positive clicks minus radius 6 around negative ones, cut to the box.

    A prompt is a "decode" (counted in ``factory.decodes``); a step's tensors are its prompts so far,
    which ``restore`` checks, so a stored result given to the wrong step is caught.
    """

    def __init__(self, image: np.ndarray, method: str, factory: "FakeFactory") -> None:
        self.height, self.width = image.shape[:2]
        self.method, self.factory = method, factory
        self._done: list[tuple[str, tuple[float, ...]]] = []
        self._undone: list[tuple[str, tuple[float, ...]]] = []

    def add_click(self, x: float, y: float, positive: bool = True) -> None:
        self.factory.decodes += 1
        self._done.append(("click", (x, y, float(positive))))
        self._undone.clear()

    def add_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.factory.decodes += 1
        self._done.append(("box", (x0, y0, x1, y1)))
        self._undone.clear()

    @staticmethod
    def _tensor(done: list[tuple[str, tuple[float, ...]]]) -> torch.Tensor:
        rows = [[0.0 if kind == "click" else 1.0, *values, *([0.0] * (4 - len(values)))] for kind, values in done]
        return torch.tensor(rows, dtype=torch.float64).reshape(-1, 5)

    def step_tensors(self, index: Optional[int] = None) -> dict[str, torch.Tensor]:
        count = len(self._done) if index is None else index + 1
        return {"prompts": self._tensor(self._done[:count]), "score": torch.tensor(0.9, dtype=torch.float64)}

    def restore(self, steps: Sequence[tuple[Any, Optional[Mapping[str, torch.Tensor]]]]) -> int:
        done: list[tuple[str, tuple[float, ...]]] = []
        decodes = 0
        for prompt, tensors in steps:
            if hasattr(prompt, "x"):
                done.append(("click", (prompt.x, prompt.y, float(prompt.positive))))
            else:
                done.append(("box", tuple(float(v) for v in prompt)))
            if tensors is None:
                decodes += 1
            elif not torch.equal(tensors["prompts"], self._tensor(done)):
                raise AssertionError(f"step {len(done) - 1} got the stored result of another step")
        self.factory.decodes += decodes
        self.factory.restores += 1
        self._done, self._undone = done, []
        return decodes

    def undo(self) -> None:
        if not self._done:
            raise RuntimeError("nothing to undo")
        self._undone.append(self._done.pop())

    def redo(self) -> None:
        if not self._undone:
            raise RuntimeError("nothing to redo")
        self._done.append(self._undone.pop())

    def reset(self) -> None:
        self._done.clear()
        self._undone.clear()

    @property
    def mask(self) -> Optional[np.ndarray]:
        if not self._done:
            return None
        yy, xx = np.mgrid[: self.height, : self.width]
        mask = np.zeros((self.height, self.width), bool)
        box = None
        for kind, values in self._done:
            if kind == "box":
                box = values
                continue
            x, y, positive = values
            near = (xx - x) ** 2 + (yy - y) ** 2
            mask = mask | (near <= 144) if positive else mask & ~(near <= 36)
        if box is not None:
            inside = (xx >= box[0]) & (xx <= box[2]) & (yy >= box[1]) & (yy <= box[3])
            mask = (mask & inside) if mask.any() else inside
        return mask

    @property
    def score(self) -> Optional[float]:
        return 0.9 if self._done else None


class FakeFactory:
    """Counts ``prepare`` calls; ``gate`` (an Event) can hold encoding back; ``fail`` names images that fail."""

    model_name = "fake"

    def __init__(self, unavailable: tuple[str, ...] = ("focsam",)) -> None:
        self.prepared: list[str] = []
        self.decodes = 0  # prompts computed by sessions, replays included
        self.restores = 0  # sessions rebuilt from stored steps
        self.gate = threading.Event()
        self.gate.set()
        self.fail: set[str] = set()
        self.refuse_methods: set[str] = set()  # create() raises ValueError for these
        self.unavailable = unavailable

    def method_options(self) -> list[MethodOption]:
        options = []
        for name in all_method_names():
            missing = [s for s in self.unavailable if s in name.split("+")]
            options.append(MethodOption(name, not missing, f"{', '.join(missing)} not loaded" if missing else ""))
        return options

    def prepare(self, name: str, image: np.ndarray) -> Any:
        self.gate.wait(10)
        if name in self.fail:
            raise RuntimeError("simulated encoder failure")
        self.prepared.append(name)
        return image

    def create(self, prepared: Any, method: str) -> FakeSession:
        if method in self.refuse_methods:
            raise ValueError(f"simulated refusal of {method}")
        return FakeSession(prepared, method, self)

    def history_key(self, prepared: Any) -> str:
        return hashlib.sha256(np.ascontiguousarray(prepared).tobytes()).hexdigest()[:16]
