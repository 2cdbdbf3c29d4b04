"""The method registry: every method describes itself with one :class:`MethodSpec`.

Where specs come from (looked up once, on the first question asked of the registry):

- each sub-package of :mod:`clicksam.methods` exposes its spec as the module attribute ``SPEC``;
- installed packages declare entry points in the group ``clicksam.methods`` whose value is the
  module attribute holding their spec (``"my_method.spec:SPEC"``);
- :func:`register` adds one at run time (tests, notebooks).

The rest of clicksam (build, checkpoint loading, the pipeline, the session, training, ONNX export,
the server, evaluation) asks the registry and names no method. A spec's callables may be given as
``"module:attribute"`` strings, imported on first use, so that listing the methods stays cheap.
This module imports neither torch nor any method's code.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

from clicksam.lazy import Lazy, lazy_exports, resolve, subpackages  # noqa: F401 - re-exported for the method packages

ENTRY_POINT_GROUP = "clicksam.methods"
UNTRAINED_IDENTITY = "identity"  # the untrained stage gives exactly SAM's result (a warning says so)
UNTRAINED_REFUSE = "refuse"  # the untrained stage gives meaningless masks: sessions refuse it



@dataclass(frozen=True)
class ConvertedCheckpoint:
    """A foreign checkpoint mapped onto clicksam's names.

    state_dict: base-model tensors under the base names (``image_encoder.``, ``prompt_encoder.``,
        ``mask_decoder.``) and the method's tensors under its spec's ``attribute`` prefix.
    image_format: the channel order the weights were trained with (``"RGB"`` or ``"BGR"``).
    """

    state_dict: dict[str, Any]
    image_format: str = "RGB"


@dataclass(frozen=True)
class CheckpointFormat:
    """A foreign file format a method can read (timm's ``checkpoint_filter_fn`` role).

    description: what the file is, for messages ("the official FocSAM checkpoint (mmengine iter_*.pth)").
    recognise: ``recognise(obj) -> bool`` on the object ``torch.load`` returned.
    convert: ``convert(obj) -> ConvertedCheckpoint``.
    """

    description: str
    recognise: Lazy
    convert: Lazy


@dataclass(frozen=True)
class PublishedWeights:
    """A checkpoint of the method published by its authors, downloaded by hand (``clicksam models``
    lists it; ``clicksam download`` does not fetch it).

    ``num_bytes``/``sha256`` are None where the authors publish none: loading the file (every
    tensor name and shape checked strictly) is then the check of the file.
    """

    name: str
    model: str
    filename: str
    page_url: str
    instructions: str
    description: str
    num_bytes: Optional[int] = None
    sha256: Optional[str] = None
    licence: str = ""


@dataclass(frozen=True)
class OnnxExport:
    """A method's part of ``clicksam export-onnx``, beside SAM's prompt encoder + decoder graph.

    export: ``export(model, decoder_path, opset) -> list[Path]``: write what the stage needs at run
        time (e.g. its own graphs) next to ``decoder_path`` and return the files written.
    A method without an ``OnnxExport`` is left out of the export (the command says so).
    """

    export: Lazy


@dataclass(frozen=True)
class MethodSpec:
    """How one method plugs into clicksam. Only ``name`` and ``stage`` are required.

    Attributes:
        name: the name in method strings (``method="sam+<name>"``); lower case, no ``+``.
        stage: the :class:`clicksam.methods.Stage` subclass run in each step (or ``"module:Class"``).
        attribute: the model attribute holding the method's module (``""``: the stage needs none).
        order: where the stage runs in a step, lower first (ties by name), whatever the user's order.
        attach: ``attach(model) -> module``: add the untrained module under ``attribute``.
        attach_from_metadata: ``attach_from_metadata(model, metadata) -> module``: build the module a
            method file's metadata describes (a configurable design), replacing an untrained one.
        file_metadata: ``file_metadata(module) -> dict``: what a method file records so that
            ``attach_from_metadata`` can rebuild the module.
        training: the ``clicksam.train.method.TrainMethod`` subclass for ``clicksam train --method``.
        checkpoint_formats: foreign files the method's weights come in (see :class:`CheckpointFormat`).
        untrained: ``"identity"`` (untrained, the stage gives exactly SAM's result; sessions warn
            once) or ``"refuse"`` (untrained, its masks mean nothing; sessions refuse it unless
            told ``allow_untrained=True``).
        weights_hint: which file to load for trained weights (said when weights are missing).
        families: the model families the method applies to (``model.family``).
        onnx: how the stage goes to ONNX (None: left out of the export).
        published_weights: checkpoints its authors publish (see :class:`PublishedWeights`).
        description: one line for listings.
    """

    name: str
    stage: Lazy
    attribute: str = ""
    order: int = 100
    attach: Optional[Lazy] = None
    attach_from_metadata: Optional[Lazy] = None
    file_metadata: Optional[Lazy] = None
    training: Optional[Lazy] = None
    checkpoint_formats: tuple[CheckpointFormat, ...] = ()
    untrained: str = UNTRAINED_REFUSE
    weights_hint: str = ""
    families: tuple[str, ...] = ("sam",)
    onnx: Optional[OnnxExport] = None
    published_weights: tuple[PublishedWeights, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip().lower() \
                or "+" in self.name or self.name == "sam":
            raise ValueError(f"a method name is a non-empty lower-case word without '+' other than 'sam', got {self.name!r}")
        if self.stage is None:
            raise ValueError(f"method {self.name!r}: a spec needs its Stage class")
        if self.untrained not in (UNTRAINED_IDENTITY, UNTRAINED_REFUSE):
            raise ValueError(f"method {self.name!r}: untrained must be {UNTRAINED_IDENTITY!r} or {UNTRAINED_REFUSE!r}, "
                             f"got {self.untrained!r}")
        if self.attribute and self.attach is None:
            raise ValueError(f"method {self.name!r} names model attribute {self.attribute!r} but no attach function")


@dataclass
class _Registry:
    specs: dict[str, MethodSpec] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # name -> why it could not be loaded
    discovered: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)


_REGISTRY = _Registry()


def _add(spec: Any, origin: str, replace: bool = False) -> None:
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"{origin} gives a {type(spec).__name__}, not a clicksam.methods.MethodSpec")
    known = _REGISTRY.specs.get(spec.name)
    if known is not None and known is not spec and not replace:
        raise ValueError(f"method {spec.name!r} from {origin} is already registered; pick another name")
    taken = {s.attribute: s.name for s in _REGISTRY.specs.values() if s.attribute and s.name != spec.name}
    if spec.attribute and spec.attribute in taken:
        raise ValueError(f"method {spec.name!r} from {origin} uses model attribute {spec.attribute!r}, "
                         f"which method {taken[spec.attribute]!r} already uses")
    _REGISTRY.specs[spec.name] = spec
    _REGISTRY.unavailable.pop(spec.name, None)


def _discover() -> None:
    """Load the built-in packages' specs, then the installed entry points (once)."""
    if _REGISTRY.discovered:
        return
    with _REGISTRY.lock:
        if _REGISTRY.discovered:
            return
        for module_name in subpackages("clicksam.methods"):
            try:
                spec = importlib.import_module(module_name).SPEC
                _add(spec, module_name)
            except Exception as exc:  # noqa: BLE001 - a broken method is listed as unavailable
                short = module_name.rpartition(".")[2]
                _REGISTRY.unavailable[short.replace("_", "-")] = f"{module_name} failed to load: {exc}"
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                _add(entry.load(), f"entry point {entry.name!r} ({entry.value})")
            except Exception as exc:  # noqa: BLE001 - another package's bug must not break clicksam
                _REGISTRY.unavailable.setdefault(entry.name, f"entry point {entry.value} failed to load: {exc}")
                warnings.warn(f"clicksam method entry point {entry.name!r} ({entry.value}) failed to load: {exc}",
                              stacklevel=3)
        _REGISTRY.discovered = True


def register(spec: MethodSpec, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to the registry (``replace`` an existing one of the same name); returns it."""
    _discover()
    with _REGISTRY.lock:
        _add(spec, f"register({spec.name!r})", replace=replace)
    return spec


def unregister(name: str) -> None:
    """Remove a method (e.g. one a test registered)."""
    _discover()
    with _REGISTRY.lock:
        _REGISTRY.specs.pop(name, None)


def specs() -> list[MethodSpec]:
    """Every available method's spec, in step order."""
    _discover()
    return sorted(_REGISTRY.specs.values(), key=lambda s: (s.order, s.name))


def list_methods() -> list[str]:
    """The available method names, in step order."""
    return [spec.name for spec in specs()]


def unavailable_methods() -> dict[str, str]:
    """Methods that could not be loaded here: name -> the reason."""
    _discover()
    return dict(_REGISTRY.unavailable)


def get_spec(name: str) -> MethodSpec:
    """The spec of method ``name``.

    Raises:
        ValueError: unknown name (the message lists the known ones), or a method that failed to load.
    """
    _discover()
    spec = _REGISTRY.specs.get(name)
    if spec is not None:
        return spec
    if name in _REGISTRY.unavailable:
        raise ValueError(f"the {name!r} method is not available here: {_REGISTRY.unavailable[name]}")
    raise ValueError(f"unknown method {name!r}; known methods: {', '.join(list_methods()) or 'none'}")


def method_help() -> str:
    """How to spell a method string, for help texts: ``sam, a, b or a '+' combination``."""
    return ", ".join(["sam", *list_methods()]) + " or a '+' combination"


def parse_method(method: str) -> list[str]:
    """``"b+a"`` -> the method names in step order; ``"sam"`` -> ``[]``.

    Raises:
        ValueError: an unknown or unavailable method name.
    """
    if not isinstance(method, str) or not method.strip():
        raise ValueError(f"method must be a non-empty string such as 'sam' or a '+'-joined combination "
                         f"of {', '.join(list_methods())}, got {method!r}")
    names = {part.strip().lower() for part in method.split("+") if part.strip()}
    names.discard("sam")
    known = specs()
    unknown = sorted(names - {s.name for s in known})
    if unknown:
        _discover()
        broken = [n for n in unknown if n in _REGISTRY.unavailable]
        if broken:
            get_spec(broken[0])  # raises with the reason
        raise ValueError(f"unknown method stage(s) {', '.join(unknown)} in {method!r}; "
                         f"use 'sam' or a '+'-joined combination of {', '.join(s.name for s in known)}")
    return [s.name for s in known if s.name in names]


def canonical_method(names: list[str]) -> str:
    """The canonical spelling of a set of method names (step order; ``"sam"`` when empty)."""
    return "+".join(parse_method("+".join(names))) if names else "sam"


def spec_for_attribute(attribute: str) -> Optional[MethodSpec]:
    """The spec whose module lives under model attribute ``attribute``, or None."""
    return next((s for s in specs() if s.attribute and s.attribute == attribute), None)


def training_methods() -> dict[str, Lazy]:
    """Method name -> its training method (class or reference), for the methods that have one."""
    return {s.name: s.training for s in specs() if s.training is not None}
