"""Stored step results: what each prompt step needs to continue from it, kept beside the annotation file.

After each prompt the session's step tensors (:meth:`clicksam.InteractiveSession.step_tensors`: SAM's
low-res logits, a stage's frame logits, the stages' compact state; never anything at the image size)
are written under ``<store>/<image>.states/``, one safetensors file per tensor named by the sha256 of
its bytes (float32 logit maps are stored as float16), and the step in the annotation file refers to
them, with the *history key* of the image and model they were computed with::

    {"kind": "click", "x": 10, "y": 20, "positive": true, "state": {"key": "<image and model digest>",
     "tensors": {"low_res_logits": {"file": "<sha256>", "dtype": "float32"},
                 "score": {"value": [0.93], "shape": [], "dtype": "float64"}, ...}}}

A tensor shared by many steps (FocSAM's refined embedding) is one file; tensors of at most
``INLINE_VALUES`` values sit in the JSON. A restarted server, an undo of a reset, a redo or a method
switch rebuilds an object's session from these without a decode; a step whose files are missing or
damaged (checked against their sha256), or that was computed with another image or model (its key),
is recomputed from the step before it. Files that no step references any more are removed after
each save. The tensors written or read are also kept in a memory cache (bounded in bytes) as they
were computed, so within one run undo and redo are exact.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import torch

from clicksam.io.atomic import atomic_write_bytes
from clicksam.server.steps import Action
from clicksam.server.store import AnnotationStore, ImageAnnotation

__all__ = ["StepStates", "INLINE_VALUES", "HALF_PRECISION"]

log = logging.getLogger(__name__)

INLINE_VALUES = 16
HALF_PRECISION = frozenset({"low_res_logits", "final_logits"})  # priors and frame logits: float16 on disk
_DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64,
                                                     torch.int8, torch.uint8, torch.int16, torch.int32,
                                                     torch.int64, torch.bool)}


def _dtype(name: Any) -> torch.dtype:
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}")
    return _DTYPES[name]


def _referenced(annotation: ImageAnnotation) -> set[str]:
    """The files every step of ``annotation`` refers to (objects, redo stacks, deleted objects)."""
    files = set()
    for record in annotation.objects + [d.record for d in annotation.deleted]:
        for step in record.actions + record.redo:
            if isinstance(step, Action) and step.state is not None:
                files.update(ref["file"] for ref in step.state["tensors"].values()
                             if isinstance(ref, dict) and isinstance(ref.get("file"), str))
    return files


class StepStates:
    """The stored step results of one annotation store.

    Args:
        store: the annotation store (the files go beside its annotation files).
        memory_bytes: tensors kept in memory, as computed or as read.
    """

    def __init__(self, store: AnnotationStore, memory_bytes: int = 256 << 20) -> None:
        self.store, self.memory_bytes = store, memory_bytes
        self._guard = threading.Lock()
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._memory_used = 0
        self._files: dict[int, tuple[weakref.ref, str]] = {}  # id(tensor) -> (the tensor, its file)

    def folder(self, image: str) -> Path:
        """Where the files of ``image`` go."""
        path = self.store.path_for(image)
        return path.with_name(path.name[: -len(".json")] + ".states")

    # ----------------------------------------------------------------- memory
    def _remember(self, file: str, tensor: torch.Tensor) -> None:
        with self._guard:
            if file in self._memory:
                self._memory.move_to_end(file)
                return
            self._memory[file] = tensor
            self._memory_used += tensor.numel() * tensor.element_size()
            while self._memory_used > self.memory_bytes and len(self._memory) > 1:
                _, old = self._memory.popitem(last=False)
                self._memory_used -= old.numel() * old.element_size()

    def _recall(self, file: str) -> Optional[torch.Tensor]:
        with self._guard:
            tensor = self._memory.get(file)
            if tensor is not None:
                self._memory.move_to_end(file)
            return tensor

    # ----------------------------------------------------------------- writing
    def put(self, image: str, key: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Store one step's tensors; returns the reference to keep in the step (``Action.state``)."""
        refs: dict[str, Any] = {}
        for name, tensor in tensors.items():
            if tensor.numel() <= INLINE_VALUES:
                refs[name] = {"value": tensor.detach().cpu().reshape(-1).tolist(), "shape": list(tensor.shape),
                              "dtype": str(tensor.dtype).removeprefix("torch.")}
            else:
                refs[name] = {"file": self._file(image, name, tensor), "dtype": str(tensor.dtype).removeprefix("torch.")}
        return {"key": key, "tensors": refs}

    def _file(self, image: str, name: str, tensor: torch.Tensor) -> str:
        known = self._files.get(id(tensor))
        if known is not None and known[0]() is tensor and (self.folder(image) / f"{known[1]}.safetensors").is_file():
            return known[1]
        from safetensors.torch import save

        stored = tensor.detach().cpu()
        if name in HALF_PRECISION and stored.dtype == torch.float32:
            stored = stored.to(torch.float16)
        data = save({"tensor": stored.contiguous()})
        file = hashlib.sha256(data).hexdigest()[:40]
        path = self.folder(image) / f"{file}.safetensors"
        if not path.is_file():
            atomic_write_bytes(path, data)
        self._know(tensor, file)
        self._remember(file, tensor)
        return file

    def _know(self, tensor: torch.Tensor, file: str) -> None:
        """Remember which file holds ``tensor`` while it lives (a shared tensor is written once)."""
        ident = id(tensor)

        def forget(ref: weakref.ref) -> None:
            if self._files.get(ident, (None,))[0] is ref:
                self._files.pop(ident, None)

        self._files[ident] = (weakref.ref(tensor, forget), file)

    # ----------------------------------------------------------------- reading
    def load(self, image: str, refs: Iterable[Optional[dict[str, Any]]], key: str) -> list[Optional[dict[str, torch.Tensor]]]:
        """The tensors of each step (None where a step has no usable stored result: none, another
        key, a missing or damaged file). Steps that share a file share one tensor object."""
        read: dict[str, Optional[torch.Tensor]] = {}
        out = []
        for ref in refs:
            if ref is None or ref.get("key") != key:
                out.append(None)
                continue
            try:
                out.append({name: self._tensor(image, value, read) for name, value in ref["tensors"].items()})
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("stored step of %s not usable (%s); it is recomputed", image, exc)
                out.append(None)
        return out

    def _tensor(self, image: str, ref: Any, read: dict[str, Optional[torch.Tensor]]) -> torch.Tensor:
        dtype = _dtype(ref["dtype"])
        if "value" in ref:
            return torch.tensor(ref["value"], dtype=dtype).reshape(ref["shape"])
        file = ref["file"]
        if file not in read:
            read[file] = self._recall(file)
            if read[file] is None:
                read[file] = self._read(image, file).to(dtype)
                self._remember(file, read[file])
                self._know(read[file], file)
        tensor = read[file]
        if tensor is None or tensor.dtype != dtype:
            raise ValueError(f"stored tensor {file} is not {ref['dtype']}")
        return tensor

    def _read(self, image: str, file: str) -> torch.Tensor:
        from safetensors.torch import load

        if not isinstance(file, str) or not file.isalnum():
            raise ValueError(f"bad file name {file!r}")
        path = self.folder(image) / f"{file}.safetensors"
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest()[:40] != file:
            path.unlink(missing_ok=True)  # written again when the step is recomputed
            raise ValueError(f"{file}.safetensors is damaged (its sha256 does not match)")
        return load(data)["tensor"]

    # ----------------------------------------------------------------- cleaning
    def collect(self, annotation: ImageAnnotation) -> int:
        """Remove the files of ``annotation``'s image that no step refers to; returns how many."""
        folder = self.folder(annotation.image)
        if not folder.is_dir():
            return 0
        keep = _referenced(annotation)
        removed = 0
        for path in folder.glob("*.safetensors"):
            if path.stem not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
