"""The embedding store: the feature bundles of a training set's images, computed once.

Layout of a store folder::

    manifest.json                 format, version, signature, shard size, dataset specs, key count,
                                  the bundle's entry names
    shard-00000.safetensors       one float16 tensor per bundle entry, n×... (SAM: "embedding"
    shard-00001.safetensors       n×256×64×64; SAM 2 adds "high_res_s0" n×32×256×256 and
    ...                           "high_res_s1" n×64×128×128; HQ-SAM "early_feature" n×C×64×64);
                                  metadata: signature, keys, input sizes (h, w) and original sizes
                                  (H, W) of its n images

A ViT-B store takes 2 MiB per image, SAM 2 8 MiB, HQ-SAM ViT-B 8 MiB (its early feature is 768 wide).
Stores of version 1 (SAM only: one "embeddings" tensor) are still read.

Image ``i`` of the fixed key order lives in shard ``i // shard_size``. Shards are written
atomically, so an interrupted build resumes by skipping the shards already complete. The
*signature* (:func:`clicksam.cache.feature_signature`, shared with the embedding cache, plus the
storage dtype) names the model, a digest of the encoder's weights, the channel order and the
preprocessing; a store whose signature differs from the model's is refused (by the builder and by
the trainer), because its embeddings would silently be wrong.

Entry points: :func:`build_embedding_store` (used by ``clicksam embed --config/--dataset``,
:mod:`clicksam.commands.embed`) and
:class:`EmbeddingStore` (read side, used by the trainer's data loader).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from clicksam.cache import feature_signature
from clicksam.models.sam import EMBEDDING
from clicksam.io.atomic import atomic_write_bytes, atomic_write_json
from clicksam.train.data import ObjectSource

STORE_FORMAT = "clicksam-embedding-store"
STORE_VERSION = 2
V1_EMBEDDINGS = "embeddings"  # version 1's one tensor: SAM's embedding


def store_signature(model: torch.nn.Module) -> dict[str, Any]:
    """What the store's embeddings depend on: the model's feature signature (the one the
    embedding cache uses: model, encoder weights, channel order, preprocessing) and the storage
    dtype."""
    return {**feature_signature(model), "dtype": "float16"}


def _mismatch(stored: dict[str, Any], wanted: dict[str, Any], where: Path) -> str:
    diffs = [f"{k}: store has {stored.get(k)!r}, model has {wanted.get(k)!r}"
             for k in sorted(set(stored) | set(wanted)) if stored.get(k) != wanted.get(k)]
    return (f"the embedding store {where} was built with a different model or preprocessing "
            f"({'; '.join(diffs)}). Rebuild it for this model with `clicksam embed --config TRAIN_CONFIG --out NEW_DIR` (or --dataset ...)")


@dataclass
class StoreSummary:
    """What a build did: images in the store, images encoded now, shards reused from before."""

    path: Path
    images: int
    encoded: int
    shards_reused: int


def _shard_path(out: Path, shard: int) -> Path:
    return out / f"shard-{shard:05d}.safetensors"


def _shard_complete(path: Path, signature: dict[str, Any], keys: Sequence[str]) -> bool:
    from safetensors import safe_open

    if not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - a torn or foreign file is simply rebuilt
        return False
    if json.loads(meta.get("signature", "{}")) != signature:
        raise ValueError(_mismatch(json.loads(meta.get("signature", "{}")), signature, path.parent))
    return json.loads(meta.get("keys", "[]")) == list(keys)


def _encode(model: torch.nn.Module, images: list[np.ndarray]) -> tuple[dict[str, torch.Tensor], list[tuple[int, int]]]:
    """Encode RGB images (each H×W×3 uint8) -> (the feature bundle, name -> n×... float16 on the CPU,
    input sizes)."""
    transforms = model.transforms()
    batch, sizes = [], []
    for image in images:
        model_input, size = transforms.image_to_input(image, model.device)
        batch.append(model_input)
        sizes.append(size)
    with torch.no_grad():
        features = model.encode_features(torch.cat(batch))
    return {name: t.to(torch.float16).cpu() for name, t in features.items()}, sizes


def build_embedding_store(
    sources: Sequence[ObjectSource], out: str | Path, model: torch.nn.Module, shard_size: int = 64,
    batch_size: int = 1, progress: bool = True, dataset_specs: Optional[list[dict[str, Any]]] = None,
) -> StoreSummary:
    """Compute (or finish computing) the embedding store of ``sources`` in ``out``.

    Args:
        sources: training sources; their ``image_keys()`` give the images, in order.
        out: store folder (created; reused when it holds a partial store of the same signature).
        model: the model whose encoder produces the feature bundles (eval mode, any device).
        shard_size: images per shard file (a shard of 64 SAM embeddings is 128 MiB, of SAM 2's 512 MiB).
        batch_size: images per encoder call.
        progress: show a tqdm bar.
        dataset_specs: the config entries of the sources, recorded in the manifest.
    Returns:
        a ``StoreSummary``.
    Raises:
        ValueError: ``out`` holds a store of another model/preprocessing, or keys collide.
    """
    from safetensors.torch import save as safetensors_bytes
    from tqdm import tqdm

    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be >= 1, got {shard_size}, {batch_size}")
    out = Path(out)
    keys: list[str] = []
    owner: list[tuple[ObjectSource, str]] = []
    for source in sources:
        for key in source.image_keys():
            keys.append(key)
            owner.append((source, key))
    if len(set(keys)) != len(keys):
        raise ValueError("two sources share image keys; give each dataset a distinct 'name'")
    signature = store_signature(model)
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if old.get("version", 1) != STORE_VERSION:
            raise ValueError(f"{out} holds a version {old.get('version', 1)} store; build the new one in a new --out folder")
        if old.get("signature") != signature:
            raise ValueError(_mismatch(old.get("signature", {}), signature, out))
        if old.get("shard_size") != shard_size or old.get("num_images") != len(keys):
            raise ValueError(f"{out} holds a store with another dataset or shard size "
                             f"({old.get('num_images')} images / {old.get('shard_size')} per shard); use a new --out folder")
    atomic_write_json(manifest_path, {
        "format": STORE_FORMAT, "version": STORE_VERSION, "signature": signature, "shard_size": shard_size,
        "num_images": len(keys), "num_shards": -(-len(keys) // shard_size), "datasets": dataset_specs or [],
        "features": list(model.feature_names),
    })
    encoded = reused = 0
    model.eval()
    bar = tqdm(total=len(keys), desc="embedding store", unit="img", disable=not progress)
    for shard in range(-(-len(keys) // shard_size)):
        shard_keys = keys[shard * shard_size : (shard + 1) * shard_size]
        path = _shard_path(out, shard)
        if _shard_complete(path, signature, shard_keys):
            reused += 1
            bar.update(len(shard_keys))
            continue
        parts: dict[str, list[torch.Tensor]] = {}
        sizes, originals = [], []
        first = shard * shard_size
        for start in range(0, len(shard_keys), batch_size):
            stop = min(start + batch_size, len(shard_keys))
            images = [src.read_image(k) for src, k in owner[first + start : first + stop]]
            features, input_sizes = _encode(model, images)
            for name, tensor in features.items():
                parts.setdefault(name, []).append(tensor)
            sizes.extend([list(s) for s in input_sizes])
            originals.extend([list(im.shape[:2]) for im in images])
            encoded += len(images)
            bar.update(len(images))
        meta = {"signature": json.dumps(signature), "keys": json.dumps(shard_keys),
                "input_sizes": json.dumps(sizes), "original_sizes": json.dumps(originals)}
        tensors = {name: torch.cat(chunks).contiguous() for name, chunks in parts.items()}
        atomic_write_bytes(path, safetensors_bytes(tensors, metadata=meta))
    bar.close()
    return StoreSummary(out, len(keys), encoded, reused)


class EmbeddingStore:
    """Read side of a store: ``store.get_features(key) -> {name: tensor}``, the image's feature
    bundle in float16 (memory-mapped, lazy); ``store.get(key)`` its embedding alone (256×64×64).

    Safe to pass to data-loader workers: open file handles are not pickled, each process opens
    its own.
    """

    def __init__(self, path: str | Path) -> None:
        from safetensors import safe_open

        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"no embedding store at {self.path} (manifest.json missing); "
                                    "build it with `clicksam embed --config TRAIN_CONFIG` (or --dataset TYPE --data-root DIR --out STORE)")
        info = json.loads(manifest.read_text())
        if info.get("format") != STORE_FORMAT:
            raise ValueError(f"{manifest} is not a clicksam embedding store manifest")
        self.signature: dict[str, Any] = info["signature"]
        self.version = int(info.get("version", 1))
        # shard tensor name -> bundle entry name
        self.tensor_names = ({V1_EMBEDDINGS: EMBEDDING} if self.version == 1
                             else {name: name for name in info.get("features", [EMBEDDING])})
        self.index: dict[str, tuple[int, int]] = {}
        self.input_sizes: dict[str, tuple[int, int]] = {}
        missing = []
        for shard in range(int(info["num_shards"])):
            path = _shard_path(self.path, shard)
            if not path.is_file():
                missing.append(path.name)
                continue
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            for row, (key, size) in enumerate(zip(json.loads(meta["keys"]), json.loads(meta["input_sizes"]))):
                self.index[key] = (shard, row)
                self.input_sizes[key] = (int(size[0]), int(size[1]))
        self.missing_shards = missing
        self._handles: dict[int, Any] = {}

    def check(self, model: torch.nn.Module) -> None:
        """Raise ValueError unless the store was built for ``model`` (same signature)."""
        wanted = store_signature(model)
        if self.signature != wanted:
            raise ValueError(_mismatch(self.signature, wanted, self.path))

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.index)

    def get(self, key: str) -> torch.Tensor:
        """The embedding of image ``key``: 256×64×64 float16."""
        return self.get_features(key)[EMBEDDING]

    def get_features(self, key: str) -> dict[str, torch.Tensor]:
        """The feature bundle of image ``key``: name -> float16 tensor without the batch axis
        (SAM: ``{"embedding": 256×64×64}``)."""
        from safetensors import safe_open

        where = self.index.get(key)
        if where is None:
            hint = f" ({len(self.missing_shards)} shards are missing: the build was interrupted?)" if self.missing_shards else ""
            raise RuntimeError(f"image {key!r} is not in the embedding store {self.path}{hint}; "
                               "run `clicksam embed --config ...` (or --dataset ...) again with the same store folder to complete it")
        shard, row = where
        handle = self._handles.get(shard)
        if handle is None:
            handle = safe_open(str(_shard_path(self.path, shard)), framework="pt")
            self._handles[shard] = handle
        return {name: handle.get_slice(stored)[row : row + 1][0] for stored, name in self.tensor_names.items()}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state
