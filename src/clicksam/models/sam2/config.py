"""SAM 2.1 configurations (the architecture numbers of facebookresearch/sam2's
``sam2/configs/sam2.1/*.yaml``), their official files, the builder, and the family's registry entry
(``FAMILY``). Importing this module does not import torch: the builder imports the model code."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from clicksam.registry import ModelFamily, RegisteredConfig, WeightsInfo

if TYPE_CHECKING:  # pragma: no cover
    from clicksam.models.sam2.sam2_base import Sam2

SAM2_FAMILY = "sam2"
SAM2_1_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"


@dataclass(frozen=True)
class Sam2Config(RegisteredConfig):
    """One SAM 2 size. The neck, prompt encoder and decoder are the same for every size."""

    name: str
    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    weights: Optional[WeightsInfo] = None
    description: str = ""
    image_size: int = 1024
    d_model: int = 256
    family: str = SAM2_FAMILY
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def backbone_channel_list(self) -> tuple[int, ...]:
        """Trunk widths, lowest resolution first (the width doubles at each stage change)."""
        return tuple(self.embed_dim * 2**i for i in reversed(range(len(self.stages))))


def _weights(filename: str, num_bytes: int, sha256: str) -> WeightsInfo:
    # sizes and sha256 are the Git LFS pointers of the same files on the Hugging Face hub
    # (facebook/sam2.1-hiera-*); the download URL is the one of sam2's checkpoints/download_ckpts.sh
    return WeightsInfo(filename, num_bytes, sha256, url=SAM2_1_BASE_URL + filename, licence="Apache-2.0")


SAM2_CONFIGS: tuple[Sam2Config, ...] = (
    Sam2Config(
        "sam2.1_hiera_t", 96, 1, (1, 2, 7, 2), (5, 7, 9), window_pos_embed_bkg_spatial_size=(7, 7),
        weights=_weights("sam2.1_hiera_tiny.pt", 156_008_466, "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69"),
        description="SAM 2.1 Hiera-T, image mode (39 M parameters with the video parts)",
    ),
    Sam2Config(
        "sam2.1_hiera_s", 96, 1, (1, 2, 11, 2), (7, 10, 13), window_pos_embed_bkg_spatial_size=(7, 7),
        weights=_weights("sam2.1_hiera_small.pt", 184_416_285, "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38"),
        description="SAM 2.1 Hiera-S, image mode (46 M parameters with the video parts)",
    ),
    Sam2Config(
        "sam2.1_hiera_b+", 112, 2, (2, 3, 16, 3), (12, 16, 20),
        weights=_weights("sam2.1_hiera_base_plus.pt", 323_606_802, "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5"),
        description="SAM 2.1 Hiera-B+, image mode (81 M parameters with the video parts)",
    ),
    Sam2Config(
        "sam2.1_hiera_l", 144, 2, (2, 6, 36, 4), (23, 33, 43), window_pos_embed_bkg_spatial_size=(7, 7),
        window_spec=(8, 4, 16, 8),
        weights=_weights("sam2.1_hiera_large.pt", 898_083_611, "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318"),
        description="SAM 2.1 Hiera-L, image mode (224 M parameters with the video parts)",
    ),
    Sam2Config(
        "sam2_tiny", 16, 1, (1, 1, 2, 1), (3,), window_pos_embed_bkg_spatial_size=(7, 7),
        description="test config: a 5-block Hiera 16 wide with SAM 2's full neck, prompt encoder and decoder; no weights",
        tags=("test",),
    ),
)


def get_sam2_config(name: str) -> Sam2Config:
    """The SAM 2 configuration called ``name``; a clear error lists the known names."""
    for config in SAM2_CONFIGS:
        if config.name == name:
            return config
    raise ValueError(f"unknown SAM 2 model {name!r}; choose one of {', '.join(c.name for c in SAM2_CONFIGS)}")


def sam2_from_config(config: Sam2Config) -> "Sam2":
    """An untrained (randomly initialised) SAM 2 image model of the given configuration."""
    from clicksam.models.sam2.hiera import Hiera
    from clicksam.models.sam2.mask_decoder import Sam2MaskDecoder, Sam2PromptEncoder, Sam2TwoWayTransformer
    from clicksam.models.sam2.neck import FpnNeck, Sam2ImageEncoder
    from clicksam.models.sam2.sam2_base import Sam2

    trunk = Hiera(
        embed_dim=config.embed_dim,
        num_heads=config.num_heads,
        stages=config.stages,
        global_att_blocks=config.global_att_blocks,
        window_spec=config.window_spec,
        window_pos_embed_bkg_spatial_size=config.window_pos_embed_bkg_spatial_size,
    )
    neck = FpnNeck(config.d_model, config.backbone_channel_list, top_down_levels=(2, 3), interpolation="nearest")
    grid = config.image_size // 16
    prompt_encoder = Sam2PromptEncoder(
        embed_dim=config.d_model,
        image_embedding_size=(grid, grid),
        input_image_size=(config.image_size, config.image_size),
        mask_in_chans=16,
    )
    decoder = Sam2MaskDecoder(
        transformer_dim=config.d_model,
        transformer=Sam2TwoWayTransformer(depth=2, embedding_dim=config.d_model, num_heads=8, mlp_dim=2048),
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    model = Sam2(Sam2ImageEncoder(trunk, neck, scalp=1), prompt_encoder, decoder, image_size=config.image_size)
    model.model_name = config.name
    return model


FAMILY = ModelFamily(
    SAM2_FAMILY, SAM2_CONFIGS, build=sam2_from_config,
    load_official="clicksam.models.sam2.checkpoint:load_sam2_checkpoint",
    description="SAM 2.1 in image mode (Hiera trunk, FPN neck, decoder with high-resolution skips)",
)
