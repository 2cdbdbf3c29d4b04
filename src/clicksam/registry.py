"""The model registry: SAM configurations and their official weights."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

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


@dataclass(frozen=True)
class ModelConfig:
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

    @property
    def has_official_weights(self) -> bool:
        """A real model size with a published checkpoint. Built without weights its masks are
        meaningless, so :func:`clicksam.build_sam` then loads the cached official file or refuses
        (unless asked for random weights). Test configurations (``tiny``) have none."""
        return self.weights is not None


_REGISTRY: dict[str, ModelConfig] = {}


def register_model(config: ModelConfig) -> ModelConfig:
    """Add a configuration to the registry (a name may be registered once)."""
    if config.name in _REGISTRY:
        raise ValueError(f"model {config.name!r} is already registered")
    _REGISTRY[config.name] = config
    return config


def get_config(name: str) -> ModelConfig:
    """The configuration registered under ``name``; a clear error lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}") from None


def list_models(include_test: bool = True) -> list[str]:
    """Registered model names (``tiny`` and other test configs included unless asked not to)."""
    return [n for n, c in _REGISTRY.items() if include_test or "test" not in c.tags]


def find_weights(filename: str) -> Optional[ModelConfig]:
    """The configuration whose official file is called ``filename``, if any."""
    for config in _REGISTRY.values():
        if config.weights is not None and config.weights.filename == filename:
            return config
    return None


register_model(ModelConfig(
    "vit_h", 1280, 32, 16, (7, 15, 23, 31),
    WeightsInfo("sam_vit_h_4b8939.pth", 2_564_550_879,
                "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
    "SAM ViT-H (636 M parameters)",
))
register_model(ModelConfig(
    "vit_l", 1024, 24, 16, (5, 11, 17, 23),
    WeightsInfo("sam_vit_l_0b3195.pth", 1_249_524_607,
                "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
    "SAM ViT-L (308 M parameters)",
))
register_model(ModelConfig(
    "vit_b", 768, 12, 12, (2, 5, 8, 11),
    WeightsInfo("sam_vit_b_01ec64.pth", 375_042_383,
                "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
    "SAM ViT-B (91 M parameters)",
))
register_model(ModelConfig(
    "tiny", 64, 2, 2, (1,), None,
    "test config: a 2-block ViT with SAM's full prompt encoder and decoder; no weights",
    tags=("test",),
))
