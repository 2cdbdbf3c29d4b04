"""What the annotator needs from a segmentation model, and the real implementation on clicksam.

The web app never touches torch directly: it talks to a :class:`SessionFactory`, which encodes
images (slow, run by the background worker) and opens one interactive session per object.
Tests inject a fake factory; :class:`SamSessionFactory` wires ``build_sam`` /
``SamPredictor`` / ``InteractiveSession`` / ``EmbeddingCache``.
"""
from __future__ import annotations

import hashlib
import itertools
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = [
    "MethodOption",
    "ObjectSession",
    "SessionFactory",
    "SamSessionFactory",
    "all_method_names",
    "method_options_for",
    "parse_method_list",
]


@dataclass(frozen=True)
class MethodOption:
    """One entry of the page's method menu.

    name: canonical method string (``"sam"``, ``"focsam+sam-ref"``, ...).
    available: whether a session can run it now.
    reason: why it is unavailable (empty when available).
    """

    name: str
    available: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "available": self.available, "reason": self.reason}


@runtime_checkable
class ObjectSession(Protocol):
    """The part of :class:`clicksam.InteractiveSession` the annotator uses (one object)."""

    def add_click(self, x: float, y: float, positive: bool = True) -> Any: ...

    def add_box(self, x0: float, y0: float, x1: float, y1: float) -> Any: ...

    def undo(self) -> Any: ...

    def redo(self) -> Any: ...

    def reset(self) -> Any: ...

    def step_tensors(self, index: Optional[int] = None) -> Mapping[str, Any]:
        """What is needed to continue from a step (default the current one), as named tensors."""

    def restore(self, steps: Sequence[tuple[Any, Optional[Mapping[str, Any]]]]) -> int:
        """Set the history to ``steps`` (prompt, stored tensors or None); returns the decodes it took."""

    @property
    def mask(self) -> Optional[np.ndarray]: ...

    @property
    def score(self) -> Optional[float]: ...


class SessionFactory(Protocol):
    """Encodes images and opens sessions; must be usable from several threads."""

    model_name: str
    random_weights: bool  # the model's base weights are random: the page says its masks are meaningless

    def method_options(self) -> list[MethodOption]:
        """Every method of the menu with its availability."""

    def prepare(self, name: str, image: np.ndarray) -> Any:
        """Encode ``image`` (HxWx3 uint8 RGB) once; the result is handed back to :meth:`create`."""

    def create(self, prepared: Any, method: str) -> ObjectSession:
        """A fresh session on a prepared image, running ``method``."""

    def history_key(self, prepared: Any) -> str:
        """What a stored step of this prepared image depends on (the image's pixels, the model's
        weights): steps stored under another key are recomputed, never reused."""


def all_method_names() -> list[str]:
    """``sam`` and every combination of the registered methods, in a stable order."""
    from clicksam.methods import list_methods

    order = list_methods()
    names = ["sam"]
    for size in range(1, len(order) + 1):
        names.extend("+".join(combo) for combo in itertools.combinations(order, size))
    return names


def method_options_for(model: Any) -> list[MethodOption]:
    """The menu for ``model``: a method is available when its stages import, apply to the model's
    family, are attached and, where their spec refuses an untrained stage, have trained weights."""
    from clicksam.methods import available_stages, get_spec, parse_method, stage_module
    from clicksam.pipeline import stage_problem

    importable = available_stages()
    options = []
    for name in all_method_names():
        stages = parse_method(name)
        missing_code = [s for s in stages if not importable.get(s, False)]
        family = getattr(model, "family", "sam")
        other_family = [s for s in stages if family not in get_spec(s).families]
        not_loaded = [s for s in stages if get_spec(s).attribute and stage_module(model, get_spec(s)) is None]
        untrained = [problem for s in stages if (problem := stage_problem(model, get_spec(s))) is not None]
        if missing_code:
            reason = f"{', '.join(missing_code)} not implemented in this build"
        elif other_family:
            reason = f"{', '.join(other_family)} does not apply to {family} models"
        elif not_loaded:
            reason = f"{', '.join(not_loaded)} not loaded (start the server with --method {name})"
        elif untrained:
            reason = untrained[0]
        else:
            reason = ""
        options.append(MethodOption(name, not reason, reason))
    return options


class SamSessionFactory:
    """Sessions on a clicksam SAM model, with embeddings cached in memory and on disk.

    Args:
        model: a model from :func:`clicksam.build_sam`.
        cache: an :class:`clicksam.cache.EmbeddingCache`; ``None`` makes the default one
            (``$CLICKSAM_CACHE/embeddings``), so reopening an image after a restart is instant.
    """

    def __init__(self, model: Any, cache: Any = None) -> None:
        from clicksam.cache import EmbeddingCache, default_cache_dir

        self.model = model
        self.model_name = str(getattr(model, "model_name", "sam"))
        self.random_weights = bool(getattr(model, "random_weights", False))
        self.cache = cache if cache is not None else EmbeddingCache(default_cache_dir() / "embeddings")
        self._options = method_options_for(model)
        self._encode_lock = threading.Lock()
        self._model_digest: Optional[str] = None
        self._keys: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()

    def method_options(self) -> list[MethodOption]:
        """Every method of the menu with its availability for this model."""
        return list(self._options)

    def prepare(self, name: str, image: np.ndarray) -> Any:
        """A :class:`clicksam.SamPredictor` with ``image`` set (from the cache when possible)."""
        from clicksam.predictor import SamPredictor

        predictor = SamPredictor(self.model, cache=self.cache)
        with self._encode_lock:  # one encoder pass at a time: it already uses every core
            predictor.set_image(image)
        self._keys[predictor] = self._history_key(predictor.signature(predictor.image_rgb).key)
        return predictor

    def _history_key(self, features_key: str) -> str:
        """The image's feature signature (pixels, encoder) with a digest of every other weight
        (prompt encoder, decoder, method stages), computed once."""
        if self._model_digest is None:
            h = hashlib.sha256()
            for name, tensor in sorted(self.model.state_dict().items()):
                if not name.startswith("image_encoder."):
                    h.update(name.encode())
                    h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
            self._model_digest = h.hexdigest()
        return hashlib.sha256(f"{features_key}|{self._model_digest}".encode()).hexdigest()[:32]

    def history_key(self, prepared: Any) -> str:
        """The key of a predictor made by :meth:`prepare` (see :class:`SessionFactory`)."""
        return self._keys[prepared]

    def create(self, prepared: Any, method: str) -> ObjectSession:
        """An :class:`clicksam.InteractiveSession` on the prepared predictor."""
        from clicksam.session import InteractiveSession

        for option in self._options:
            if option.name == method and not option.available:
                raise ValueError(f"method {method!r} is unavailable: {option.reason}")
        return InteractiveSession(prepared, method=method)


def parse_method_list(methods: Sequence[str]) -> tuple[list[str], str]:
    """Stages to attach and the default method for ``--method`` values (first one is the default)."""
    from clicksam.methods import canonical_method, parse_method

    stages: list[str] = []
    for method in methods:
        for stage in parse_method(method):
            if stage not in stages:
                stages.append(stage)
    default = canonical_method(parse_method(methods[0])) if methods else "sam"
    return stages, default
