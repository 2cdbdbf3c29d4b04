"""FocSAM (Huang et al., CVPR 2024): refocus SAM's embedding once, at the second click.

Public names: :class:`FocusRefiner`, :func:`modulated_deform_conv2d`, the focus-window helpers,
the official-checkpoint conversion, :class:`FocSamStage`, :class:`FocSamTraining` and ``SPEC``
(the method's registry entry). They load on first use, so that listing the registered methods
imports no model code.

Untrained, the refiner turns the embedding into noise from click 2 on, so the spec declares the
untrained stage refused: sessions ask for the official checkpoint or a trained method file.
"""
from __future__ import annotations

from clicksam.methods.registry import UNTRAINED_REFUSE, CheckpointFormat, MethodSpec, PublishedWeights, lazy_exports

# The model families FocSAM applies to: the refiner works on the 256×64×64 embedding, the coarse
# low-res logits and the single-mask token, which SAM, HQ-SAM and SAM 2 share (the refocused
# embedding replaces the bundle's embedding; SAM 2's skips and HQ-SAM's early feature stay the
# encoder's). The authors' checkpoint exists for SAM ViT-H only; other families need training.
FAMILIES = ("sam", "sam2", "hq-sam")

_CHECKPOINT = "clicksam.methods.focsam.checkpoint"
_FOCUS = "clicksam.methods.focsam.focus"
_STAGE = "clicksam.methods.focsam.stage"
_LAZY = {
    "FocusRefiner": "clicksam.methods.focsam.refiner",
    "modulated_deform_conv2d": "clicksam.methods.focsam.dcn",
    "box_to_cells": _FOCUS,
    "draw_expand_ratio": _FOCUS,
    "focus_box": _FOCUS,
    "focus_cells": _FOCUS,
    "FocSamStage": _STAGE,
    "attach": _STAGE,
    "convert_checkpoint": _CHECKPOINT,
    "convert_official": _CHECKPOINT,
    "is_official_focsam": _CHECKPOINT,
    "FocSamTraining": "clicksam.methods.focsam.training",
}

SPEC = MethodSpec(
    name="focsam",
    stage=f"{_STAGE}:FocSamStage",
    attribute="focus_refiner",
    order=20,
    attach=f"{_STAGE}:attach",
    training="clicksam.methods.focsam.training:FocSamTraining",
    checkpoint_formats=(
        CheckpointFormat("the official FocSAM checkpoint (mmengine iter_*.pth)",
                         recognise=f"{_CHECKPOINT}:is_official_focsam", convert=f"{_CHECKPOINT}:convert_checkpoint"),
    ),
    families=FAMILIES,
    untrained=UNTRAINED_REFUSE,
    weights_hint=(
        "load the official FocSAM checkpoint (iter_160000.pth, a ViT-H file: build_sam('vit_h', checkpoint=PATH, "
        "trust_checkpoint=True); CLI: --model vit_h --checkpoint PATH --trust-checkpoint) or a clicksam focsam "
        "method file written by `clicksam train --method focsam` (checkpoint=[base, method_file])"
    ),
    published_weights=(
        PublishedWeights(
            "focsam_vit_h", "vit_h", "iter_160000.pth",
            "https://drive.google.com/file/d/1VOeMkY9LovfWYi66JMR8q79gFiC4n3Az/view?usp=sharing",
            "a zip on Google Drive, linked from the README of github.com/YouHuang67/focsam; unzip it and pass "
            "iter_160000.pth with --checkpoint (and --trust-checkpoint: an mmengine file with pickled metadata)",
            "FocSAM ViT-H (official): SAM ViT-H, a COCO+LVIS fine-tuned decoder and the FocusRefiner",
            licence="MIT",
        ),
    ),
    description="FocSAM: refocus the embedding on the object at the second click (CVPR 2024)",
)

__all__ = ["SPEC", *_LAZY]

__getattr__ = lazy_exports(__name__, _LAZY)
