"""HQ-SAM configurations (segment-anything-hq's ``build_sam.py``), their official files on the
Hugging Face hub (lkeab/hq-sam), the builder, and the family's registry entry (``FAMILY``).
Importing this module does not import torch: the builder imports the model code."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Union

from clicksam.registry import ModelFamily, RegisteredConfig, WeightsInfo

if TYPE_CHECKING:  # pragma: no cover
    from clicksam.models.hq_sam.hq_sam import HQSam

HQ_SAM_FAMILY = "hq-sam"
HQ_SAM_BASE_URL = "https://huggingface.co/lkeab/hq-sam/resolve/main/"
VIT = "vit"
TINY_VIT = "tiny_vit"


@dataclass(frozen=True)
class HQSamConfig(RegisteredConfig):
    """One HQ-SAM size: a SAM ViT encoder (``encoder == "vit"``: embed_dim, depth, num_heads,
    global_attn_indexes) or MobileSAM's TinyViT (``"tiny_vit"``: the per-stage tuples)."""

    name: str
    encoder: str
    embed_dim: int = 0
    depth: int = 0
    num_heads: int = 0
    global_attn_indexes: tuple[int, ...] = ()
    tiny_embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    tiny_depths: tuple[int, ...] = (2, 2, 6, 2)
    tiny_num_heads: tuple[int, ...] = (2, 4, 5, 10)
    tiny_window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    tiny_mlp_ratio: float = 4.0
    weights: Optional[WeightsInfo] = None
    description: str = ""
    image_size: int = 1024
    prompt_embed_dim: int = 256
    family: str = HQ_SAM_FAMILY
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def early_feature_dim(self) -> int:
        """Channels of the early feature the HQ decoder fuses (``vit_dim`` of segment-anything-hq)."""
        return self.embed_dim if self.encoder == VIT else self.tiny_embed_dims[2]


def _weights(filename: str, num_bytes: int, sha256: str) -> WeightsInfo:
    # sizes and sha256 are the Git LFS pointers of lkeab/hq-sam, the files the sam-hq README links
    return WeightsInfo(filename, num_bytes, sha256, url=HQ_SAM_BASE_URL + filename, licence="Apache-2.0")


HQ_SAM_CONFIGS: tuple[HQSamConfig, ...] = (
    HQSamConfig(
        "hq_vit_h", VIT, 1280, 32, 16, (7, 15, 23, 31),
        weights=_weights("sam_hq_vit_h.pth", 2_570_940_653, "a7ac14a085326d9fa6199c8c698c4f0e7280afdbb974d2c4660ec60877b45e35"),
        description="HQ-SAM ViT-H (SAM ViT-H with HQ-SAM's decoder, 643 M parameters)",
    ),
    HQSamConfig(
        "hq_vit_l", VIT, 1024, 24, 16, (5, 11, 17, 23),
        weights=_weights("sam_hq_vit_l.pth", 1_254_865_805, "e1a6c385d62bf005ded91a54d5ec55c985cfc4103ef89c08d90f39f04934c343"),
        description="HQ-SAM ViT-L (SAM ViT-L with HQ-SAM's decoder, 314 M parameters)",
    ),
    HQSamConfig(
        "hq_vit_b", VIT, 768, 12, 12, (2, 5, 8, 11),
        weights=_weights("sam_hq_vit_b.pth", 379_335_069, "14a9d662cd6f5a9c2dba6d40ab0058d88d287e4a18fd6fdc6ad5fb1a3fdeaa57"),
        description="HQ-SAM ViT-B (SAM ViT-B with HQ-SAM's decoder, 95 M parameters)",
    ),
    HQSamConfig(
        "hq_vit_tiny", TINY_VIT,
        weights=_weights("sam_hq_vit_tiny.pth", 42_526_881, "0f32c075ccdd870ae54db2f7630e7a0878ede5a2b06d05d6fe02c65a82fb7196"),
        description="Light HQ-SAM (MobileSAM's TinyViT encoder with HQ-SAM's decoder, 10 M parameters)",
    ),
    HQSamConfig(
        "hq_tiny", VIT, 64, 2, 2, (1,),
        description="test config: a 2-block ViT with HQ-SAM's full prompt encoder and decoder; no weights",
        tags=("test",),
    ),
    HQSamConfig(
        "hq_tinyvit_test", TINY_VIT, tiny_embed_dims=(16, 32, 48, 320), tiny_depths=(1, 1, 1, 1),
        tiny_num_heads=(1, 2, 3, 4), tiny_mlp_ratio=1.0,
        description="test config: a 4-block TinyViT (the last stage 320 wide, as MobileSAM's) with HQ-SAM's decoder; no weights",
        tags=("test",),
    ),
)


def get_hq_sam_config(name: str) -> HQSamConfig:
    """The HQ-SAM configuration called ``name``; a clear error lists the known names."""
    for config in HQ_SAM_CONFIGS:
        if config.name == name:
            return config
    raise ValueError(f"unknown HQ-SAM model {name!r}; choose one of {', '.join(c.name for c in HQ_SAM_CONFIGS)}")


def hq_sam_from_config(config: HQSamConfig) -> "HQSam":
    """An untrained (randomly initialised) HQ-SAM of the given configuration."""
    from clicksam.models.hq_sam.hq_sam import HQSam
    from clicksam.models.hq_sam.image_encoder import HQImageEncoderViT
    from clicksam.models.hq_sam.mask_decoder_hq import MaskDecoderHQ
    from clicksam.models.hq_sam.tiny_vit import TinyViT
    from clicksam.models.prompt_encoder import PromptEncoder
    from clicksam.models.transformer import TwoWayTransformer

    size = config.image_size
    grid = size // 16
    encoder: Union[HQImageEncoderViT, TinyViT]
    if config.encoder == VIT:
        encoder = HQImageEncoderViT(
            img_size=size, patch_size=16, embed_dim=config.embed_dim, depth=config.depth, num_heads=config.num_heads,
            out_chans=config.prompt_embed_dim, use_rel_pos=True, window_size=14,
            global_attn_indexes=config.global_attn_indexes,
        )
    elif config.encoder == TINY_VIT:
        encoder = TinyViT(
            img_size=size, embed_dims=config.tiny_embed_dims, depths=config.tiny_depths, num_heads=config.tiny_num_heads,
            window_sizes=config.tiny_window_sizes, mlp_ratio=config.tiny_mlp_ratio, out_chans=config.prompt_embed_dim,
        )
    else:
        raise ValueError(f"{config.name}: unknown encoder kind {config.encoder!r} (expected {VIT!r} or {TINY_VIT!r})")
    prompt_encoder = PromptEncoder(
        embed_dim=config.prompt_embed_dim, image_embedding_size=(grid, grid), input_image_size=(size, size), mask_in_chans=16,
    )
    decoder = MaskDecoderHQ(
        transformer_dim=config.prompt_embed_dim,
        transformer=TwoWayTransformer(depth=2, embedding_dim=config.prompt_embed_dim, num_heads=8, mlp_dim=2048),
        vit_dim=config.early_feature_dim,
    )
    model = HQSam(encoder, prompt_encoder, decoder)
    model.model_name = config.name
    return model


FAMILY = ModelFamily(
    HQ_SAM_FAMILY, HQ_SAM_CONFIGS, build=hq_sam_from_config,
    load_official="clicksam.models.hq_sam.checkpoint:load_hq_sam_checkpoint",
    description="HQ-SAM: SAM's encoder (ViT or MobileSAM's TinyViT) with a high-quality output token",
)
