"""The model registry: every model family's configurations and their official weights.

A *model family* (SAM, SAM 2.1, HQ-SAM, ...) registers itself with one :class:`ModelFamily`: its
configurations, the builder that turns one into an untrained model, and the loader of its official
files (timm's registered builder and checkpoint filter). :func:`clicksam.build_sam` and
:mod:`clicksam.checkpoint` ask the registry and name no family.

Where families come from (looked up once, on the first question asked of the registry): SAM's is
declared here; every sub-package of :mod:`clicksam.models` that exposes ``FAMILY`` adds its own
(``clicksam.models.sam2``, ``clicksam.models.hq_sam``); :func:`register_family` adds one at run
time. Family packages declare their configurations without importing torch, so listing the models
(``clicksam --help``, ``clicksam models``) stays cheap.
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from clicksam.lazy import Lazy, subpackages

WEIGHTS_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


@dataclass(frozen=True)
class WeightsInfo:
    """An official checkpoint file: where it lives and how to recognise it."""

    filename: str
    num_bytes: int
    sha256: str
    url: str = ""
    licence: str = "Apache-2.0"

    @property
    def download_url(self) -> str:
        return self.url or WEIGHTS_BASE_URL + self.filename


class RegisteredConfig:
    """What every family's configuration offers the registry, besides its fields ``name``,
    ``family``, ``weights`` (a :class:`WeightsInfo` or None), ``description``, ``image_size`` and
    ``tags`` (``"test"`` marks a test configuration)."""

    @property
    def has_official_weights(self) -> bool:
        """A real model size with a published checkpoint. Built without weights its masks are
        meaningless, so :func:`clicksam.build_sam` then loads the cached official file or refuses
        (unless asked for random weights). Test configurations (``tiny``) have none."""
        return getattr(self, "weights", None) is not None


@dataclass(frozen=True)
class ModelConfig(RegisteredConfig):
    """One SAM size. The prompt encoder and mask decoder are the same for every size."""

    name: str
    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    weights: Optional[WeightsInfo] = None
    description: str = ""
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    tags: tuple[str, ...] = field(default_factory=tuple)
    family: str = "sam"


@dataclass(frozen=True)
class ModelFamily:
    """How one model family plugs into clicksam.

    Attributes:
        name: the family's name, ``model.family`` of its models (``"sam"``, ``"sam2"``, ``"hq-sam"``).
        configs: its configurations (each with ``family == name``); registered with the family.
        build: ``build(config) -> model``, an untrained (randomly initialised) model.
        load_official: ``load_official(model, path, trust_checkpoint=False)``: load one of the
            family's official files (or any other base file the family reads) into ``model``,
            strictly, setting ``model.weights_sha256``; errors name the file and what is wrong.
        description: one line for listings.
    """

    name: str
    configs: tuple[Any, ...]
    build: Lazy
    load_official: Lazy
    description: str = ""

    def __post_init__(self) -> None:
        strays = [c.name for c in self.configs if getattr(c, "family", None) != self.name]
        if strays:
            raise ValueError(f"family {self.name!r}: configurations {strays} belong to another family")


@dataclass
class _Registry:
    configs: dict[str, Any] = field(default_factory=dict)
    families: dict[str, ModelFamily] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # family package -> why it failed to load
    discovered: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)


_REGISTRY = _Registry()


def _add_family(family: ModelFamily) -> None:
    if not isinstance(family, ModelFamily):
        raise TypeError(f"expected a clicksam.registry.ModelFamily, got {type(family).__name__}")
    if family.name in _REGISTRY.families and _REGISTRY.families[family.name] is not family:
        raise ValueError(f"model family {family.name!r} is already registered")
    taken = [c.name for c in family.configs if c.name in _REGISTRY.configs]
    if family.name not in _REGISTRY.families and taken:
        raise ValueError(f"family {family.name!r}: model name(s) {taken} are already registered")
    _REGISTRY.families[family.name] = family
    for config in family.configs:
        _REGISTRY.configs[config.name] = config


def _discover() -> None:
    """Register SAM's family, then every ``clicksam.models`` sub-package's ``FAMILY`` (once)."""
    if _REGISTRY.discovered:
        return
    with _REGISTRY.lock:
        if _REGISTRY.discovered:
            return
        _add_family(SAM_FAMILY)
        for module_name in subpackages("clicksam.models"):
            try:
                family = getattr(importlib.import_module(module_name), "FAMILY", None)
                if family is not None:
                    _add_family(family)
            except Exception as exc:  # noqa: BLE001 - a broken family must not hide the others
                _REGISTRY.unavailable[module_name] = f"{type(exc).__name__}: {exc}"
        _REGISTRY.discovered = True


def register_family(family: ModelFamily) -> ModelFamily:
    """Add a model family and its configurations (a name may be registered once); returns it."""
    _discover()
    with _REGISTRY.lock:
        _add_family(family)
    return family


def register_model(config: Any) -> Any:
    """Add one configuration to its (registered) family's list (a name may be registered once)."""
    _discover()
    with _REGISTRY.lock:
        if config.name in _REGISTRY.configs:
            raise ValueError(f"model {config.name!r} is already registered")
        if getattr(config, "family", None) not in _REGISTRY.families:
            raise ValueError(f"model {config.name!r}: its family {getattr(config, 'family', None)!r} is not registered")
        _REGISTRY.configs[config.name] = config
    return config


def get_family(name: str) -> ModelFamily:
    """The family called ``name`` (``model.family``); a clear error lists the known ones."""
    _discover()
    try:
        return _REGISTRY.families[name]
    except KeyError:
        broken = "".join(f"; {m} failed to load ({why})" for m, why in _REGISTRY.unavailable.items())
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(_REGISTRY.families)}{broken}") from None


def list_families() -> list[str]:
    """The registered family names (SAM's first)."""
    _discover()
    return list(_REGISTRY.families)


def get_config(name: str) -> Any:
    """The configuration registered under ``name`` (a :class:`ModelConfig` for SAM, the family's own
    configuration type for the others); a clear error lists the known names."""
    _discover()
    try:
        return _REGISTRY.configs[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}") from None


def list_models(include_test: bool = True, family: Optional[str] = None) -> list[str]:
    """Registered model names, SAM's first (test configs such as ``tiny`` included unless asked
    not to; only the family ``family`` when given)."""
    _discover()
    return [n for n, c in _REGISTRY.configs.items()
            if (include_test or "test" not in c.tags) and (family is None or c.family == family)]


def family_configs(family: str) -> list[Any]:
    """The configurations of family ``family``, in registration order."""
    return [get_config(name) for name in list_models(family=family)]


def find_weights(filename: str) -> Optional[Any]:
    """The configuration whose official file is called ``filename``, if any."""
    _discover()
    for config in _REGISTRY.configs.values():
        if config.weights is not None and config.weights.filename == filename:
            return config
    return None


def is_test_config(config: Any) -> bool:
    """Whether ``config`` is a test configuration (tagged ``"test"``: random weights, no file)."""
    return "test" in getattr(config, "tags", ())


SAM_CONFIGS: tuple[ModelConfig, ...] = (
    ModelConfig(
        "vit_h", 1280, 32, 16, (7, 15, 23, 31),
        WeightsInfo("sam_vit_h_4b8939.pth", 2_564_550_879,
                    "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
        "SAM ViT-H (636 M parameters)",
    ),
    ModelConfig(
        "vit_l", 1024, 24, 16, (5, 11, 17, 23),
        WeightsInfo("sam_vit_l_0b3195.pth", 1_249_524_607,
                    "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
        "SAM ViT-L (308 M parameters)",
    ),
    ModelConfig(
        "vit_b", 768, 12, 12, (2, 5, 8, 11),
        WeightsInfo("sam_vit_b_01ec64.pth", 375_042_383,
                    "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
        "SAM ViT-B (91 M parameters)",
    ),
    ModelConfig(
        "tiny", 64, 2, 2, (1,), None,
        "test config: a 2-block ViT with SAM's full prompt encoder and decoder; no weights",
        tags=("test",),
    ),
)

# SAM's official files and the foreign formats registered methods declare load through
# clicksam.checkpoint's SAM loader.
SAM_FAMILY = ModelFamily(
    "sam", SAM_CONFIGS, build="clicksam.build:sam_from_config",
    load_official="clicksam.checkpoint:load_sam_file",
    description="Segment Anything (ViT-B/L/H image encoder, 256x64x64 embedding)",
)
