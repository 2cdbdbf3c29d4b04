"""Embedding cache: an in-memory LRU in front of an on-disk store.

An entry is an image's *feature bundle* (what the model family's encoder hands over per image;
SAM: one ``"embedding"`` tensor 1×256×64×64), keyed by an :class:`EmbeddingSignature`: the image's
content hash and the model's :func:`feature_signature` (model, encoder weights, preprocessing),
the same signature the training embedding store records. The signature and a sha256 of the tensor
bytes are stored inside the entry as well and checked on every read, so a stale, foreign or corrupt
file (even one damaged at the same size) is detected and recomputed, never silently used.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch


def encoder_digest(model) -> str:
    """A digest that changes whenever the weights behind the feature bundle do: the checkpoint's
    sha256 when the model was loaded from a file, else a hash of the image encoder's tensors and of
    the family's other feature parameters (``model.extra_feature_prefixes``, e.g. SAM 2's
    ``no_mem_embed`` and skip projections), computed once and remembered on the model. A
    fine-tuned decoder or an attached method stage leaves it alone."""
    known = getattr(model, "weights_sha256", None)
    if known:
        return f"sha256:{known}"
    cached = model.__dict__.get("_clicksam_encoder_digest")
    if cached:
        return cached
    h = hashlib.sha256()
    extra = tuple(getattr(model, "extra_feature_prefixes", ()))
    tensors = sorted(model.image_encoder.state_dict().items())
    tensors += sorted((k, v) for k, v in model.state_dict().items() if k.startswith(extra) or k in extra)
    for name, tensor in tensors:
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    digest = f"encoder-params:{h.hexdigest()}"
    model.__dict__["_clicksam_encoder_digest"] = digest
    return digest


def feature_signature(model) -> dict[str, Any]:
    """What an image's features depend on besides the image: the model, its encoder weights and
    its family's preprocessing (channel order, version, frame, statistics). JSON-ready."""
    return {"model_name": model.model_name, "weights": encoder_digest(model), **model.transforms().describe()}


@dataclass(frozen=True)
class EmbeddingSignature:
    """The cache key of one image's features: its content hash and the model's feature signature."""

    image_sha256: str
    features: dict[str, Any]

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:40]


@dataclass
class CachedFeatures:
    """features: the bundle, name -> 1×... float32 tensor (SAM: ``{"embedding": 1×256×64×64}``);
    original_size (H, W); input_size (h, w) of the resized image in the model's frame."""

    features: dict[str, torch.Tensor]
    original_size: tuple[int, int]
    input_size: tuple[int, int]


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order (an entry's checksum)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$CLICKSAM_CACHE`` or ``~/.cache/clicksam``."""
    return Path(os.environ.get("CLICKSAM_CACHE") or Path.home() / ".cache" / "clicksam")


class EmbeddingCache:
    """LRU of ``max_items`` embeddings in memory, backed by ``directory`` on disk (None: memory only)."""

    def __init__(self, directory: Union[str, Path, None] = None, max_items: int = 8) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.max_items = max_items
        self._memory: "OrderedDict[str, tuple[EmbeddingSignature, CachedFeatures]]" = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.rejected = 0  # entries on disk found stale or corrupt

    def _path(self, sig: EmbeddingSignature) -> Optional[Path]:
        if self.directory is None:
            return None
        return self.directory / sig.key[:2] / f"{sig.key}.safetensors"

    def get(self, sig: EmbeddingSignature) -> Optional[CachedFeatures]:
        """The cached entry for ``sig`` or None (a mismatched or unreadable file counts as absent)."""
        item = self._memory.get(sig.key)
        if item is not None and item[0] == sig:
            self._memory.move_to_end(sig.key)
            self.hits += 1
            return item[1]
        path = self._path(sig)
        if path is not None and path.is_file():
            entry = self._read(path, sig)
            if entry is not None:
                self._remember(sig, entry)
                self.hits += 1
                return entry
            self.rejected += 1
        self.misses += 1
        return None

    def put(self, sig: EmbeddingSignature, entry: CachedFeatures) -> None:
        """Store ``entry`` in memory and (atomically) on disk."""
        self._remember(sig, entry)
        path = self._path(sig)
        if path is None:
            return
        from safetensors.torch import save_file

        from clicksam.io.atomic import atomic_path

        tensors = {name: t.detach().float().cpu().contiguous() for name, t in entry.features.items()}
        meta = {"signature": json.dumps(asdict(sig), sort_keys=True),
                "original_size": json.dumps(list(entry.original_size)),
                "input_size": json.dumps(list(entry.input_size)),
                "tensor_sha256": tensor_digest(tensors)}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    def _remember(self, sig: EmbeddingSignature, entry: CachedFeatures) -> None:
        self._memory[sig.key] = (sig, entry)
        self._memory.move_to_end(sig.key)
        while len(self._memory) > self.max_items:
            self._memory.popitem(last=False)

    @staticmethod
    def _read(path: Path, sig: EmbeddingSignature) -> Optional[CachedFeatures]:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if json.loads(meta.get("signature", "{}")) != asdict(sig):
                    return None
                features = {name: f.get_tensor(name) for name in f.keys()}
            original = tuple(json.loads(meta["original_size"]))
            input_size = tuple(json.loads(meta["input_size"]))
        except Exception:  # noqa: BLE001 - any unreadable file is a cache miss, recomputed
            return None
        if meta.get("tensor_sha256") != tensor_digest(features):
            return None  # damaged bytes (or an entry from before checksums): recomputed, never used
        if not features or any(t.ndim < 2 or t.shape[0] != 1 for t in features.values()):
            return None
        return CachedFeatures(features, original, input_size)  # type: ignore[arg-type]

    def clear_memory(self) -> None:
        self._memory.clear()
