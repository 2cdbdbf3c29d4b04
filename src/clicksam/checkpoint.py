"""Reading checkpoint files: each model family's official files (through the loader its
:class:`~clicksam.registry.ModelFamily` registers; SAM's is :func:`load_sam_file` here), clicksam
method files, and the foreign formats that registered methods declare (their ``CheckpointFormat``:
a recogniser and a converter onto clicksam's names). This module never names a method or a family.

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

from clicksam.lazy import resolve
from clicksam.registry import family_configs, find_weights, get_family

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


def describe_architecture(state_dict: dict[str, torch.Tensor], family: str) -> Optional[str]:
    """Which registered ViT size of ``family`` (whose configurations have SAM's ``encoder_embed_dim``
    and ``encoder_depth``) a SAM state dict belongs to (None if it is not one)."""
    key = "image_encoder.patch_embed.proj.weight"
    if key not in state_dict:
        return None
    dim = state_dict[key].shape[0]
    depth = len({k.split(".")[2] for k in state_dict if k.startswith("image_encoder.blocks.")})
    for cfg in family_configs(family):
        if cfg.encoder_embed_dim == dim and cfg.encoder_depth == depth:
            return cfg.name
    return f"an unregistered ViT ({dim} wide, {depth} blocks)"


def _check_architecture(path: Path, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    found = describe_architecture(state_dict, model.family)
    if found is None:
        sample = ", ".join(list(state_dict)[:3])
        raise ValueError(
            f"{path}: not a SAM checkpoint (no image_encoder.* weights; first keys: {sample}). "
            f"Expected an official SAM file{_foreign_formats_text()} or a clicksam method file"
        )
    if found != model.model_name:
        raise ValueError(f"{path}: this is a {found} checkpoint; you asked for {model.model_name}")


def load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """``module.load_state_dict(state_dict, strict=True)`` with errors that name ``path``, ``what``
    was loaded, the missing and unexpected keys and the first tensor of the wrong shape."""
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


def _foreign_formats_text() -> str:
    from clicksam.methods import specs

    described = [fmt.description for spec in specs() for fmt in spec.checkpoint_formats]
    return "".join(f", {d}" for d in described)


def _foreign_format(obj: Any):
    """The (spec, format) of the first registered foreign format that recognises ``obj``, or None."""
    from clicksam.methods import specs

    for spec in specs():
        for fmt in spec.checkpoint_formats:
            if resolve(fmt.recognise)(obj):
                return spec, fmt
    return None


def load_into_model(model: nn.Module, path: Path, first: bool = True, trust_checkpoint: bool = False) -> None:
    """Load ``path`` into ``model`` (see :func:`clicksam.build_sam`): a clicksam method file
    (``*.safetensors``), or a base file read by the loader of the model's family."""
    path = Path(path)
    if path.suffix == ".safetensors":
        load_method_file(model, path)
        return
    load_official = resolve(get_family(model.family).load_official)
    load_official(model, path, trust_checkpoint=trust_checkpoint)


def load_sam_file(model: nn.Module, path: Path, trust_checkpoint: bool = False) -> None:
    """The SAM family's loader: an official SAM file (or a training checkpoint wrapping one under
    ``model``), or a file in a foreign format a registered method declares (e.g. FocSAM's)."""
    path = Path(path)
    obj = read_torch_file(path, trust_checkpoint)
    foreign = _foreign_format(obj)
    if foreign is not None:
        _load_foreign(model, path, obj, *foreign)
        return
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and "image_encoder.patch_embed.proj.weight" in obj["model"]:
        obj = obj["model"]  # a training checkpoint that wraps a SAM state dict
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (an official SAM file), found {type(obj).__name__}")
    _check_architecture(path, model, obj)
    load_strict(BaseView(model), obj, path, "SAM")
    model.weights_sha256 = weights_sha256(path)


def _load_foreign(model: nn.Module, path: Path, obj: Any, spec, fmt) -> None:
    """Load a file in a method's foreign format: the base weights, then the method's module."""
    from clicksam.methods import attach_stage

    converted = resolve(fmt.convert)(obj)
    base_names = set(model.base_modules)
    base, stage, stray = {}, {}, []
    for key, value in converted.state_dict.items():
        head, _, rest = key.partition(".")
        if head in base_names:
            base[key] = value
        elif spec.attribute and head == spec.attribute:
            stage[rest] = value
        else:
            stray.append(key)
    if stray:
        raise ValueError(f"{path}: {fmt.description}: converted keys outside the model, e.g. {stray[:3]}")
    _check_architecture(path, model, base)
    load_strict(BaseView(model), base, path, f"SAM ({fmt.description})")
    if stage:
        module = attach_stage(model, spec.name)
        load_strict(module, stage, path, f"{spec.name} ({fmt.description})")
        module.clicksam_trained = True
    model.image_format = converted.image_format
    model.weights_sha256 = weights_sha256(path)


class BaseView(nn.Module):
    """A view of a model without its method stages (only ``model.base_modules``, plus the model's
    own parameters such as SAM 2's ``no_mem_embed``), for strict loading of the base weights."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        for name in model.base_modules:
            self.add_module(name, model._modules[name])
        for name, param in model._parameters.items():
            self.register_parameter(name, param)


def save_method_file(
    path: os.PathLike | str,
    model: nn.Module,
    prefixes: Iterable[str],
    methods: Iterable[str],
    extra_metadata: Optional[dict[str, Any]] = None,
) -> Path:
    """Write the tensors of ``model`` under ``prefixes`` (model attributes with a dot, e.g.
    ``["sam_ref."]``) to a safetensors method file with JSON metadata, atomically.

    ``methods`` names the methods the file holds (registry names; others, e.g. a training method
    such as ``decoder``, are recorded as given). What each method's spec records about its module
    (``file_metadata``, e.g. a configurable design) goes into the metadata, so the file loads.
    """
    from safetensors.torch import save_file

    from clicksam.methods import specs

    prefixes = tuple(prefixes)
    methods = sorted(set(methods))
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k.startswith(prefixes)}
    if not tensors:
        raise ValueError(f"the model has no weights under {prefixes}; attach the method's stage first")
    described: dict[str, Any] = {}
    for spec in specs():
        if spec.name in methods and spec.file_metadata is not None and spec.attribute + "." in prefixes:
            described.update(resolve(spec.file_metadata)(model._modules[spec.attribute]))
    meta = {
        "format": METHOD_FILE_FORMAT,
        "version": METHOD_FILE_VERSION,
        "methods": methods,
        "prefixes": list(prefixes),
        "base_model": model.model_name,
        "base_sha256": getattr(model, "weights_sha256", None),
        **described,
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


def _refuse_feature_changes(model: nn.Module, attribute: str, state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a method file that would change what the cached feature bundles depend on (e.g. SAM 2's
    skip projections inside its decoder): caches key features by the base file, so they would go stale."""
    extra = tuple(getattr(model, "extra_feature_prefixes", ()))
    own = model.state_dict()
    changed = [f"{attribute}.{k}" for k, v in state.items()
               if (f"{attribute}.{k}".startswith(extra) or f"{attribute}.{k}" in extra)
               and f"{attribute}.{k}" in own and (own[f"{attribute}.{k}"].shape != v.shape
                                                  or not torch.equal(own[f"{attribute}.{k}"].to(v.dtype), v))]
    if changed:
        raise ValueError(f"{path}: changes {changed[:3]}, which make the per-image features (cached by the base "
                         "file's sha256); a method file may not change them (clicksam's training keeps them frozen)")


def load_method_file(model: nn.Module, path: Path) -> dict[str, Any]:
    """Merge a method file onto ``model`` (attaching the stages it names); returns its metadata."""
    from clicksam.methods import attach_stage, list_methods, spec_for_attribute

    tensors, meta = read_method_file(path)
    if meta.get("base_model") != model.model_name:
        raise ValueError(f"{path}: this method file was trained on {meta.get('base_model')}; you asked for {model.model_name}")
    base_sha = meta.get("base_sha256")
    if base_sha and getattr(model, "weights_sha256", None) not in (None, base_sha):
        warnings.warn(f"{path} was trained on base weights {base_sha[:12]}…, the model has {model.weights_sha256[:12]}…", stacklevel=3)
    known = list_methods()
    for name in meta.get("methods", []):
        if name in known:
            attach_stage(model, name, metadata=meta)
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        attribute, _, rest = key.partition(".")
        groups.setdefault(attribute, {})[rest] = value
    decoder = getattr(model, "decoder_attribute", "mask_decoder")
    for attribute, state in groups.items():
        is_stage = spec_for_attribute(attribute) is not None
        if not is_stage and attribute != decoder:
            raise ValueError(f"{path}: method files may not replace '{attribute}' (only method stages and {decoder})"
                             if attribute in model.base_modules else
                             f"{path}: holds weights for '{attribute}', which no installed method provides "
                             f"(installed: {', '.join(known) or 'none'})")
        module = model._modules.get(attribute)
        if module is None:
            raise ValueError(f"{path}: holds weights for '{attribute}', which this model does not have")
        _refuse_feature_changes(model, attribute, state, path)
        load_strict(module, state, path, attribute)
        module.clicksam_trained = True
    return meta
