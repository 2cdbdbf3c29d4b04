"""Loading the official files of the model families other than SAM (SAM 2.1, HQ-SAM) as they are:
strict, with the parts clicksam does not run (SAM 2's video memory, TinyViT's classifier head)
skipped by name, and errors that name the file and what is wrong.

A family hands over its configurations, its builder, how to get the state dict out of the file
object, and the names it skips; nothing here names a family."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, NoReturn, Optional, Sequence

import torch
from torch import nn

from clicksam.checkpoint import BaseView, file_sha256, load_strict, read_torch_file

StateDict = dict[str, torch.Tensor]


def is_ignored(key: str, ignored: Sequence[str]) -> bool:
    """Whether ``key`` is one of the ``ignored`` names: an exact parameter name or a module prefix
    ending in a dot."""
    return any(key == name or (name.endswith(".") and key.startswith(name)) for name in ignored)


def split_ignored(state_dict: StateDict, ignored: Sequence[str]) -> tuple[StateDict, list[str]]:
    """(the state dict without the ignored keys, the sorted ignored keys that were present)."""
    kept = {k: v for k, v in state_dict.items() if not is_ignored(k, ignored)}
    return kept, sorted(k for k in state_dict if k not in kept)


def shape_table(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def identify_config(state_dict: StateDict, configs: Iterable[Any], build: Callable[[Any], nn.Module]) -> Optional[Any]:
    """The configuration whose model has exactly the keys and shapes of ``state_dict`` (models
    are built on the meta device: no memory, no initialisation)."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    for config in configs:
        with torch.device("meta"):
            model = build(config)
        if shape_table(model) == shapes:
            return config
    return None


def official_sha256(path: Path, configs: Iterable[Any]) -> str:
    """The file's sha256: the registered one for an intact official file (same name and size),
    else computed."""
    for config in configs:
        weights = getattr(config, "weights", None)
        if weights is not None and weights.filename == path.name and path.stat().st_size == weights.num_bytes:
            return weights.sha256
    return file_sha256(path)


def load_official_file(
    model: nn.Module,
    path: Path,
    *,
    family: str,
    configs: Sequence[Any],
    build: Callable[[Any], nn.Module],
    extract: Callable[[Any, Path], StateDict],
    ignored: Sequence[str],
    trust_checkpoint: bool = False,
) -> list[str]:
    """Load an official ``family`` file into ``model`` (built from one of ``configs``, named by
    ``model.model_name``).

    Args:
        extract: file object -> state dict (raises ValueError naming the file when the layout is wrong).
        ignored: names skipped when present (exact parameter names, or module prefixes ending in ".").
        trust_checkpoint: allow a file holding pickled objects besides tensors (trusted files only).
    Returns:
        the keys of the file that were skipped.
    """
    path = Path(path)
    state_dict, skipped = split_ignored(extract(read_torch_file(path, trust_checkpoint), path), ignored)
    base = BaseView(model)  # the model without its method stages
    found = identify_config(state_dict, configs, build)
    if found is None:
        _explain_mismatch(path, family, model, state_dict)
    if found.name != model.model_name:
        raise ValueError(f"{path}: this is a {found.name} checkpoint; you asked for {model.model_name}")
    load_strict(base, state_dict, path, family)
    model.weights_sha256 = official_sha256(path, configs)
    return skipped


def _explain_mismatch(path: Path, family: str, model: nn.Module, state_dict: StateDict) -> NoReturn:
    own = shape_table(BaseView(model))  # the base model's own tensors, without method stages
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and tuple(state_dict[k].shape) != own[k]]
    if len(missing) > len(own) // 2:
        sample = ", ".join(list(state_dict)[:3])
        raise ValueError(f"{path}: not a {family} checkpoint (first keys: {sample}); expected an official {family} file")
    detail = (
        f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
        f"{len(wrong)} with another shape (e.g. {wrong[:3]})"
    )
    raise ValueError(f"{path}: a {family} checkpoint of no registered size ({detail} against {model.model_name})")
