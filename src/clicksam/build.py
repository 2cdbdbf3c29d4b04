"""``build_sam``: a model of any registered family (SAM, SAM 2.1, HQ-SAM) from the registry,
optionally with checkpoints and method stages; and ``sam_from_config``, the SAM family's builder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence, Union

import torch
from torch import nn

from clicksam.lazy import resolve
from clicksam.models import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from clicksam.registry import ModelConfig, get_config, get_family

PathLike = Union[str, os.PathLike]


def sam_from_config(config: ModelConfig) -> Sam:
    """An untrained (randomly initialised) SAM of the given configuration."""
    grid = config.image_size // config.patch_size
    encoder = ImageEncoderViT(
        img_size=config.image_size,
        patch_size=config.patch_size,
        embed_dim=config.encoder_embed_dim,
        depth=config.encoder_depth,
        num_heads=config.encoder_num_heads,
        mlp_ratio=4.0,
        out_chans=config.prompt_embed_dim,
        qkv_bias=True,
        use_rel_pos=True,
        window_size=config.window_size,
        global_attn_indexes=config.encoder_global_attn_indexes,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=config.prompt_embed_dim,
        image_embedding_size=(grid, grid),
        input_image_size=(config.image_size, config.image_size),
        mask_in_chans=16,
    )
    decoder = MaskDecoder(
        transformer_dim=config.prompt_embed_dim,
        transformer=TwoWayTransformer(depth=2, embedding_dim=config.prompt_embed_dim, num_heads=8, mlp_dim=2048),
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    sam = Sam(encoder, prompt_encoder, decoder)
    sam.model_name = config.name
    return sam


def build_sam(
    name: str,
    checkpoint: Union[PathLike, Sequence[PathLike], None] = None,
    methods: Iterable[str] = (),
    device: Union[str, torch.device] = "cpu",
    trust_checkpoint: bool = False,
    seed: int = 0,
    random_weights: bool = False,
) -> nn.Module:
    """Build a model by registry name, of any registered family.

    Args:
        name: SAM's ``vit_b``, ``vit_l``, ``vit_h``; SAM 2.1's ``sam2.1_hiera_t``/``_s``/``_b+``/``_l``;
            HQ-SAM's ``hq_vit_b``/``_l``/``_h``/``hq_vit_tiny``; or a test config (``tiny``,
            ``sam2_tiny``, ``hq_tiny``, ...); see :func:`clicksam.list_models`.
        checkpoint: a path, or a list of paths loaded in order: the family's official file (SAM:
            also an official FocSAM file, mmengine ``iter_*.pth``), and/or clicksam method files
            (``*.safetensors``). Method files given alone sit on the cached official base of a real size.
        methods: stages to attach untrained (``"stable-sam"``, ``"focsam"``, ``"sam-ref"``); stages
            named by a method file are attached automatically. A method that does not apply to the
            model's family (its spec's ``families``) is refused.
        device: where to put the model.
        trust_checkpoint: allow a checkpoint that holds arbitrary pickled objects (e.g. the
            optimizer/meta entries of an mmengine file) to be unpickled. Only for files you trust.
        seed: seed of the random initialisation of whatever no checkpoint overwrites (the ``tiny``
            test model, untrained stages), so a build is the same in every process.
        random_weights: build a real size (one with official weights) with random weights on purpose
            (tests, speed checks). Without it, a real size given no base checkpoint loads its cached
            official file, or raises :class:`clicksam.download.MissingWeightsError` saying how to get
            it. Test configurations (``tiny``) are always allowed to be random.
    Returns:
        the model in eval mode (:class:`~clicksam.models.Sam`, or the family's class, e.g.
        :class:`~clicksam.models.sam2.Sam2`); ``model.random_weights`` tells whether its base
        weights are random.
    """
    from clicksam.checkpoint import load_into_model
    from clicksam.methods import attach_stage, parse_method

    config = get_config(name)
    build = resolve(get_family(config.family).build)
    paths = _checkpoint_paths(config, checkpoint, random_weights)  # refuse before building anything
    stages = parse_method("+".join(methods) if methods else "sam")
    # Untrained weights come from a fixed seed, so the same call gives the same model in every
    # process (test models, untrained stages); the caller's RNG state is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build(config)
        for stage in stages:
            attach_stage(model, stage)
    for i, path in enumerate(paths):
        load_into_model(model, path, first=(i == 0), trust_checkpoint=trust_checkpoint)
    model.random_weights = not (paths and _is_base_file(paths[0]))
    model.to(device)
    model.eval()
    return model


def _is_base_file(path: Path) -> bool:
    return path.suffix != ".safetensors"  # clicksam method files; every other file holds base weights


def _checkpoint_paths(config, checkpoint: Union[PathLike, Sequence[PathLike], None],
                      random_weights: bool) -> list[Path]:
    """The files to load in order: the given ones, with the cached official file in front when a real
    size would otherwise get a random base (MissingWeightsError when it is not cached)."""
    if checkpoint is None:
        paths = []
    elif isinstance(checkpoint, (str, os.PathLike)):
        paths = [Path(checkpoint)]
    else:
        paths = [Path(p) for p in checkpoint]
    has_base = bool(paths) and _is_base_file(paths[0])
    if random_weights and has_base:
        raise ValueError(f"random_weights=True contradicts the base checkpoint {paths[0]}; pass one or the other")
    if has_base or random_weights or not config.has_official_weights:
        return paths
    from clicksam.download import MissingWeightsError, cached_checkpoint, missing_checkpoint_message

    cached = cached_checkpoint(config.name)
    if not cached.is_file():
        raise MissingWeightsError(config.name, missing_checkpoint_message(config.name, cli=False))
    return [cached, *paths]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
