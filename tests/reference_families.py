"""The reference ``sam2`` and ``segment_anything_hq`` packages for parity tests, with random weights
built by their own code.

Both are test-only dependencies installed without their dependencies (see the Makefile's ``dev``
target). ``sam2`` imports torchvision (stand-in: :mod:`tests.reference_sam`); segment-anything-hq's
TinyViT imports four names from timm, which imports torchvision itself, so these tests insert a
stand-in ``timm`` with exactly those names: ``DropPath`` (stochastic depth; an identity in eval mode
or with probability 0, which is all the reference builders use), ``to_2tuple``, ``trunc_normal_``
(timm's is ``torch.nn.init.trunc_normal_``'s algorithm; the tests overwrite the weights anyway) and
``register_model`` (a decorator that registers nothing)."""
from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from tests.reference_sam import _install_torchvision_stand_in

# the official architecture of each registered SAM 2.1 name (sam2's own config files)
SAM2_CONFIG_FILES = {
    "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_l": "configs/sam2.1/sam2.1_hiera_l.yaml",
}

# the tiny test config (clicksam's sam2_tiny) as overrides of the official hiera_t file
SAM2_TINY_OVERRIDES = [
    "++model.image_encoder.trunk.embed_dim=16",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
]


def _require(module: str, hint: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"the reference {module} package is not installed ({hint})")


def reference_sam2():
    """The ``sam2`` module (skips the test when the package or hydra is not installed)."""
    _require("hydra", "pip install hydra-core iopath; see the Makefile's dev target")
    _require("sam2", "SAM2_BUILD_CUDA=0 pip install --no-deps --no-build-isolation sam2==1.1.0")
    _install_torchvision_stand_in()
    import sam2

    return sam2


def build_reference_sam2(name: str, device: str = "cpu"):
    """SAM2Base built by sam2's ``build_sam2`` from its official config (``name`` a registered
    SAM 2.1 name, or ``sam2_tiny`` for the test config), with the image predictor's post-processing
    settings, in eval mode."""
    reference_sam2()
    from sam2.build_sam import build_sam2

    if name == "sam2_tiny":
        config, overrides = SAM2_CONFIG_FILES["sam2.1_hiera_t"], SAM2_TINY_OVERRIDES
    else:
        config, overrides = SAM2_CONFIG_FILES[name], []
    return build_sam2(config, ckpt_path=None, device=device, hydra_overrides_extra=overrides)


@contextmanager
def meta_device() -> Iterator[None]:
    """Build models on the meta device (shapes only, no memory). sam2's Hiera calls ``.item()`` on
    ``torch.linspace`` (its drop-path schedule), which a meta tensor cannot answer, so within this
    block ``torch.linspace`` makes CPU tensors unless told otherwise."""
    real = torch.linspace

    def cpu_linspace(*args, **kwargs):
        kwargs.setdefault("device", "cpu")
        return real(*args, **kwargs)

    torch.linspace = cpu_linspace
    try:
        with torch.device("meta"):
            yield
    finally:
        torch.linspace = real


def _install_timm_stand_in() -> None:
    if "timm" in sys.modules and getattr(sys.modules["timm"], "_clicksam_stand_in", False):
        return

    class DropPath(nn.Module):
        def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
            super().__init__()
            self.drop_prob, self.scale_by_keep = drop_prob, scale_by_keep

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep = 1 - self.drop_prob
            mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
            return x * (mask / keep if self.scale_by_keep else mask)

    def to_2tuple(x):
        return tuple(x) if isinstance(x, Iterable) and not isinstance(x, str) else (x, x)

    def register_model(fn):
        return fn

    timm = types.ModuleType("timm")
    timm._clicksam_stand_in = True
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    registry = types.ModuleType("timm.models.registry")
    layers.DropPath, layers.to_2tuple, layers.trunc_normal_ = DropPath, to_2tuple, nn.init.trunc_normal_
    registry.register_model = register_model
    timm.models, models.layers, models.registry = models, layers, registry
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers, "timm.models.registry": registry})


def reference_sam_hq():
    """The ``segment_anything_hq`` module (skips the test when the package is not installed)."""
    _require("segment_anything_hq", "pip install --no-deps segment-anything-hq")
    _install_torchvision_stand_in()
    _install_timm_stand_in()
    import segment_anything_hq

    return segment_anything_hq


def randomize_(model: nn.Module, seed: int, std: float = 0.02) -> nn.Module:
    """Perturb every floating-point parameter and buffer (position embeddings, LayerNorm and
    BatchNorm statistics included) so that parity tests exercise all of them; BatchNorm running
    variances stay positive."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.dtype.is_floating_point:
                continue
            noise = torch.randn(tensor.shape, generator=generator) * std
            if name.endswith("running_var"):
                tensor.copy_(tensor.abs() + noise.abs() + 0.5)
            else:
                tensor.add_(noise)
    return model


def build_reference_sam_hq(name: str):
    """segment-anything-hq's Sam (with MaskDecoderHQ) for a clicksam HQ-SAM config name, built by
    its own classes: the registered sizes through ``sam_model_registry``, the test configs through
    ``_build_sam`` (ViT) or the same classes as its ``build_sam_vit_t`` with smaller stages."""
    hq = reference_sam_hq()
    from clicksam.models.hq_sam import get_hq_sam_config

    registered = {"hq_vit_b": "vit_b", "hq_vit_l": "vit_l", "hq_vit_h": "vit_h", "hq_vit_tiny": "vit_tiny"}
    if name in registered:
        return hq.sam_model_registry[registered[name]]().eval()
    config = get_hq_sam_config(name)
    if config.encoder == "vit":
        from segment_anything_hq.build_sam import _build_sam

        return _build_sam(config.embed_dim, config.depth, config.num_heads, list(config.global_attn_indexes)).eval()
    from segment_anything_hq.modeling import MaskDecoderHQ, PromptEncoder, Sam, TinyViT, TwoWayTransformer

    encoder = TinyViT(
        img_size=1024, in_chans=3, num_classes=1000, embed_dims=list(config.tiny_embed_dims), depths=list(config.tiny_depths),
        num_heads=list(config.tiny_num_heads), window_sizes=list(config.tiny_window_sizes), mlp_ratio=config.tiny_mlp_ratio,
        drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False, mbconv_expand_ratio=4.0, local_conv_size=3, layer_lr_decay=0.8,
    )
    decoder = MaskDecoderHQ(
        num_multimask_outputs=3, transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256, vit_dim=config.early_feature_dim,
    )
    prompt_encoder = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16)
    return Sam(encoder, prompt_encoder, decoder).eval()
