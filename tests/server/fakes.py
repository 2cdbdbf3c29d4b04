"""A model-free session factory for the annotator's API tests (disks around clicks)."""
from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

from clicksam.server.backend import MethodOption, all_method_names


class FakeSession:
    """Mask = disks of radius 12 around positive clicks minus radius 6 around negative ones, cut to the box."""

    def __init__(self, image: np.ndarray, method: str) -> None:
        self.height, self.width = image.shape[:2]
        self.method = method
        self._done: list[tuple[str, tuple[float, ...]]] = []
        self._undone: list[tuple[str, tuple[float, ...]]] = []

    def add_click(self, x: float, y: float, positive: bool = True) -> None:
        self._done.append(("click", (x, y, float(positive))))
        self._undone.clear()

    def add_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self._done.append(("box", (x0, y0, x1, y1)))
        self._undone.clear()

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
        return FakeSession(prepared, method)
