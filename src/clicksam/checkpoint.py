"""Reading checkpoint files: official SAM files, the official FocSAM file and clicksam method files.

Every failure names the file and says what was expected and what was found.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable, Optional

import torch
from torch import nn

from clicksam.registry import find_weights, get_config, list_models

METHOD_FILE_FORMAT = "clicksam-method"
METHOD_FILE_VERSION = 1


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def weights_sha256(path: Path) -> str:
    """The file's sha256: taken from the registry for an intact official file, else computed."""
    config = find_weights(path.name)
    if config is not None and config.weights is not None and path.stat().st_size == config.weights.num_bytes:
        return config.weights.sha256
    return file_sha256(path)


def read_torch_file(path: Path, trust_checkpoint: bool = False) -> Any:
    """``torch.load`` with errors that say which file failed and why."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    official = find_weights(path.name)
    if official is not None and official.weights is not None and size != official.weights.num_bytes:
        raise ValueError(
            f"{path}: expected {official.weights.num_bytes:,} bytes for the official {official.name} file, found {size:,}; "
            f"the file is truncated or not the official one. Delete it and run `clicksam download {official.name}`"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_checkpoint, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on bad bytes
        if not trust_checkpoint and "weights only load failed" in str(exc).lower() and "unsupported global" in str(exc).lower():
            raise ValueError(
                f"{path}: the file holds pickled objects besides tensors (e.g. an optimizer or training metadata). "
                "If you trust its origin, pass trust_checkpoint=True (CLI: --trust-checkpoint)"
            ) from exc
        raise ValueError(
            f"{path}: not a readable PyTorch checkpoint ({size:,} bytes; truncated or corrupt?): {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc


def describe_architecture(state_dict: dict[str, torch.Tensor]) -> Optional[str]:
    """Which registered model a SAM state dict belongs to (None if none matches)."""
    key = "image_encoder.patch_embed.proj.weight"
    if key not in state_dict:
        return None
    dim = state_dict[key].shape[0]
    depth = len({k.split(".")[2] for k in state_dict if k.startswith("image_encoder.blocks.")})
    for name in list_models():
        cfg = get_config(name)
        if cfg.encoder_embed_dim == dim and cfg.encoder_depth == depth:
            return name
    return f"an unregistered ViT ({dim} wide, {depth} blocks)"


def _check_architecture(path: Path, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    found = describe_architecture(state_dict)
    if found is None:
        sample = ", ".join(list(state_dict)[:3])
        raise ValueError(
            f"{path}: not a SAM checkpoint (no image_encoder.* weights; first keys: {sample}). "
            "Expected an official SAM file, an official FocSAM file or a clicksam method file"
        )
    if found != model.model_name:
        raise ValueError(f"{path}: this is a {found} checkpoint; you asked for {model.model_name}")


def _load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], path: Path, what: str) -> None:
    missing, unexpected = [], []
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"{path}: the {what} weights do not match the model: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        k, found, expected = wrong[0]
        raise ValueError(f"{path}: {len(wrong)} {what} tensors have the wrong shape, e.g. {k}: found {found}, expected {expected}")
    module.load_state_dict(state_dict, strict=True)


def load_into_model(model: nn.Module, path: Path, first: bool = True, trust_checkpoint: bool = False) -> None:
    """Load ``path`` into ``model`` (see :func:`clicksam.build_sam`)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        load_method_file(model, path)
        return
    obj = read_torch_file(path, trust_checkpoint)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and any(
        k.startswith("refine_head.") for k in obj["state_dict"]
    ):
        _load_official_focsam(model, path, obj)
        return
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and "image_encoder.patch_embed.proj.weight" in obj["model"]:
        obj = obj["model"]  # a training checkpoint that wraps a SAM state dict
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (an official SAM file), found {type(obj).__name__}")
    _check_architecture(path, model, obj)
    _load_strict(BaseView(model), obj, path, "SAM")
    model.weights_sha256 = weights_sha256(path)


def _load_official_focsam(model: nn.Module, path: Path, obj: dict) -> None:
    try:
        from clicksam.methods.focsam.checkpoint import convert_official
    except ImportError as exc:
        raise RuntimeError(f"{path} is an official FocSAM checkpoint, but the focsam method is not available in this build") from exc
    from clicksam.methods import attach_stage

    sam_sd, refiner_sd = convert_official(obj)
    _check_architecture(path, model, sam_sd)
    _load_strict(BaseView(model), sam_sd, path, "SAM (FocSAM backbone/neck/decode_head)")
    attach_stage(model, "focsam")
    _load_strict(model.focus_refiner, refiner_sd, path, "FocSAM refine_head")
    model.focus_refiner.clicksam_trained = True
    model.image_format = "BGR"  # their pipeline feeds SAM BGR pixels with the RGB statistics
    model.weights_sha256 = weights_sha256(path)


class BaseView(nn.Module):
    """A view of a SAM model without its method stages, for strict loading of the base weights."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from clicksam.methods import STAGE_ATTRIBUTES

        stages = set(STAGE_ATTRIBUTES.values())
        for name, child in model.named_children():
            if name not in stages:
                self.add_module(name, child)


def save_method_file(
    path: os.PathLike | str,
    model: nn.Module,
    prefixes: Iterable[str],
    methods: Iterable[str],
    extra_metadata: Optional[dict[str, Any]] = None,
) -> Path:
    """Write the tensors of ``model`` under ``prefixes`` (e.g. ``["stable_sam."]``) to a
    safetensors method file with JSON metadata, atomically."""
    from safetensors.torch import save_file

    prefixes = tuple(prefixes)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k.startswith(prefixes)}
    if not tensors:
        raise ValueError(f"the model has no weights under {prefixes}; attach the method's stage first")
    meta = {
        "format": METHOD_FILE_FORMAT,
        "version": METHOD_FILE_VERSION,
        "methods": sorted(set(methods)),
        "prefixes": list(prefixes),
        "base_model": model.model_name,
        "base_sha256": getattr(model, "weights_sha256", None),
        **(extra_metadata or {}),
    }
    from clicksam.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"clicksam": json.dumps(meta)})
    return path


def read_method_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and metadata of a method file."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise FileNotFoundError(f"method file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("clicksam", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable clicksam method file (truncated or corrupt?): {exc}") from exc
    if meta.get("format") != METHOD_FILE_FORMAT:
        raise ValueError(f"{path}: a safetensors file without clicksam method metadata; expected a file written by `clicksam train`")
    return tensors, meta


def load_method_file(model: nn.Module, path: Path) -> dict[str, Any]:
    """Merge a method file onto ``model`` (attaching the stages it names); returns its metadata."""
    from clicksam.methods import STAGE_ATTRIBUTES, attach_stage

    tensors, meta = read_method_file(path)
    if meta.get("base_model") != model.model_name:
        raise ValueError(f"{path}: this method file was trained on {meta.get('base_model')}; you asked for {model.model_name}")
    base_sha = meta.get("base_sha256")
    if base_sha and getattr(model, "weights_sha256", None) not in (None, base_sha):
        warnings.warn(f"{path} was trained on base weights {base_sha[:12]}…, the model has {model.weights_sha256[:12]}…", stacklevel=3)
    for stage in meta.get("methods", []):
        if stage in STAGE_ATTRIBUTES:
            attach_stage(model, stage, metadata=meta)
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        attribute, _, rest = key.partition(".")
        groups.setdefault(attribute, {})[rest] = value
    for attribute, state in groups.items():
        module = model._modules.get(attribute)
        if module is None:
            raise ValueError(f"{path}: holds weights for '{attribute}', which this model does not have")
        if attribute in STAGE_ATTRIBUTES.values() or attribute == "mask_decoder":
            _load_strict(module, state, path, attribute)
        else:
            raise ValueError(f"{path}: method files may not replace '{attribute}' (only method stages and mask_decoder)")
        module.clicksam_trained = True
    return meta
