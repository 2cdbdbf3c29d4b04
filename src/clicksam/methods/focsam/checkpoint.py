"""The official FocSAM checkpoint (``iter_160000.pth``): recognise it and map it onto clicksam.

The file is an mmengine training checkpoint: a dict whose ``state_dict`` entry holds the weights
under ``backbone.`` (SAM's image encoder, neck included), ``neck.`` (SAM's prompt encoder, two
modules renamed), ``decode_head.`` (a fine-tuned SAM mask decoder) and ``refine_head.`` (the
FocusRefiner); ``meta``, ``optimizer`` and ``message_hub`` entries may sit beside it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from clicksam.methods.registry import ConvertedCheckpoint

# official prefix -> clicksam prefix (the refiner's keys are returned without a prefix)
_PREFIXES: dict[str, str] = {
    "backbone.": "image_encoder.",
    "neck.": "prompt_encoder.",
    "decode_head.": "mask_decoder.",
}
_REFINER_PREFIX = "refine_head."
# module names that FocSAM's prompt encoder ("neck") spells differently from segment-anything
_NECK_RENAMES: dict[str, str] = {
    "pos_embed_layer.": "pe_layer.",
    "point_embeds.": "point_embeddings.",
}


def _state_dict_of(obj: Any) -> Mapping[str, Any] | None:
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        return obj["state_dict"]
    return None


def is_official_focsam(obj: Any) -> bool:
    """True for a loaded official FocSAM checkpoint: a dict whose ``state_dict`` entry holds
    ``refine_head.*`` tensors (an mmengine checkpoint of FocSAM's ``ClickMixSegmentorRefine``)."""
    state = _state_dict_of(obj)
    return state is not None and any(isinstance(k, str) and k.startswith(_REFINER_PREFIX) for k in state)


def convert_official(obj: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Split an official FocSAM checkpoint into SAM weights and FocusRefiner weights.

    Args:
        obj: the loaded checkpoint (the mmengine dict with a ``state_dict`` entry) or the
            ``state_dict`` itself.

    Returns:
        ``(sam_state_dict, refiner_state_dict)``: the first with segment-anything keys
        (``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``) for
        ``Sam.load_state_dict(strict=True)``; the second with the ``FocusRefiner`` keys.

    Raises:
        ValueError: not a FocSAM checkpoint, a key outside the four known prefixes, or a value
            that is not a tensor.
    """
    state = _state_dict_of(obj)
    if state is None:
        state = obj if isinstance(obj, Mapping) else None
    if state is None or not any(isinstance(k, str) and k.startswith(_REFINER_PREFIX) for k in state):
        raise ValueError(
            "not an official FocSAM checkpoint: expected a dict whose 'state_dict' holds 'refine_head.*' "
            "tensors (the mmengine file iter_160000.pth)"
        )
    sam: dict[str, Tensor] = {}
    refiner: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"official FocSAM checkpoint: entry {key!r} is a {type(value).__name__}, not a tensor")
        if key.startswith(_REFINER_PREFIX):
            refiner[key[len(_REFINER_PREFIX) :]] = value
            continue
        for old, new in _PREFIXES.items():
            if key.startswith(old):
                rest = key[len(old) :]
                if old == "neck.":
                    for old_name, new_name in _NECK_RENAMES.items():
                        if rest.startswith(old_name):
                            rest = new_name + rest[len(old_name) :]
                sam[new + rest] = value
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:5])
        raise ValueError(
            f"official FocSAM checkpoint: {len(unknown)} key(s) outside backbone./neck./decode_head./refine_head.: "
            f"{shown}{' ...' if len(unknown) > 5 else ''}"
        )
    return sam, refiner


def convert_checkpoint(obj: Any, attribute: str = "focus_refiner") -> ConvertedCheckpoint:
    """The official file on clicksam's names, for ``build_sam``'s loader: the SAM weights, the
    refiner's under ``attribute + "."``, and the BGR channel order their pipeline feeds SAM
    (BGR pixels normalised with the RGB statistics)."""
    sam, refiner = convert_official(obj)
    state = {**sam, **{f"{attribute}.{key}": value for key, value in refiner.items()}}
    return ConvertedCheckpoint(state, image_format="BGR")


def read_shapes(shapes: str | Path | Sequence[tuple[str, Sequence[int]]]) -> list[tuple[str, tuple[int, ...]]]:
    """The (name, shape) list of a checkpoint, from a JSON file of ``[name, shape]`` pairs or a list."""
    if isinstance(shapes, (str, Path)):
        path = Path(shapes)
        try:
            entries = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the shapes file {path}: {exc}") from exc
    else:
        entries = shapes
    try:
        return [(str(name), tuple(int(d) for d in shape)) for name, shape in entries]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shapes must be [name, [dims...]] pairs: {exc}") from exc


def synthetic_official_state_dict(
    shapes: str | Path | Sequence[tuple[str, Sequence[int]]],
    seed: int = 0,
    random_prefixes: Sequence[str] = ("neck.", "decode_head.", "refine_head."),
) -> dict[str, Tensor]:
    """A state dict with exactly the official names and shapes, cheap to build and to save.

    Tensors under ``random_prefixes`` get small random values (std 0.02; LayerNorm-like 1-D
    ``weight`` tensors 1 + that; ``gamma*`` 1). Every other tensor (the multi-GB image encoder) is a
    stride-0 view of one value, ``1e-4 · (index + 1)``, so it costs one float in memory and on disk
    while each key still holds a value that identifies it.
    """
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, Tensor] = {}
    for index, (name, shape) in enumerate(read_shapes(shapes)):
        if any(name.startswith(p) for p in random_prefixes):
            value = torch.randn(shape, generator=generator) * 0.02
            leaf = name.rsplit(".", 1)[-1]
            if leaf.startswith("gamma") or (leaf == "weight" and len(shape) == 1 and "norm" in name):
                value = value + 1.0
            state[name] = value
        else:
            state[name] = torch.full((1,), 1e-4 * (index + 1)).expand(shape)
    return state


def write_synthetic_official_checkpoint(
    path: str | Path,
    shapes: str | Path | Sequence[tuple[str, Sequence[int]]],
    seed: int = 0,
) -> Path:
    """Write a random-weight file with the structure of the official ``iter_160000.pth``.

    The ``state_dict`` holds every tensor of ``shapes`` (see :func:`synthetic_official_state_dict`);
    ``meta`` and ``optimizer`` entries sit beside it as in an mmengine checkpoint. The file is about
    120 MB for ViT-H (the refiner and decoder are random, the encoder is stored as constants).
    """
    path = Path(path)
    payload = {
        "meta": {"mmengine_version": "0.8.4", "iter": 160000, "seed": seed},
        "state_dict": synthetic_official_state_dict(shapes, seed=seed),
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": []}]},
    }
    torch.save(payload, path)
    return path
