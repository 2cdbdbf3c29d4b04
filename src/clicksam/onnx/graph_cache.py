"""A disk cache of exported ONNX graphs, keyed by what the graph was made from.

An entry is a folder ``<cache>/onnx/<kind>-<hash>/`` holding ``graph.onnx`` (plus the external
tensor file of a graph over :data:`EXTERNAL_DATA_BYTES`) and ``manifest.json``: the key and every
file's size and sha256. The manifest is written last (atomically), so it is the commit point: an
entry without one, with a foreign key, or with a file whose size or sha256 differs (a truncated or
damaged graph) is rebuilt, never loaded. Builds of the same entry by two processes are serialised
with a lock file where the platform has ``fcntl``.

Every exported graph uses this one mechanism (the image encoder now, the decoder and method graphs
later): ``cached_graph(GraphKey.make(digest, "encoder-fp32", 17, revision="1"), build)``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from clicksam.io.atomic import atomic_write_json

PathLike = Union[str, "os.PathLike[str]"]
GRAPH_FILE = "graph.onnx"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "clicksam-onnx-graph-v1"
# Protobuf cannot serialise a message over 2 GiB: larger graphs keep their tensors in a side file.
EXTERNAL_DATA_BYTES = 1 << 30
_VERIFIED: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime_ns) -> checked in this process


def clicksam_version() -> str:
    import clicksam

    return clicksam.__version__


@dataclass(frozen=True)
class GraphKey:
    """What an exported graph depends on.

    Attributes:
        weights_digest: :func:`clicksam.cache.encoder_digest` (decoder graphs: :func:`clicksam.onnx.click_graphs.decoder_digest`) of the model the graph was traced from.
        kind: the graph's role and precision, e.g. ``"encoder-fp32"``, ``"encoder-int8"``.
        opset: the ONNX opset it was exported with.
        version: the clicksam version that exported it.
        options: any further choices, as sorted (name, value) pairs (an export revision, the
            methods in a decoder graph, a quantisation recipe).
    """

    weights_digest: str
    kind: str
    opset: int
    version: str = field(default_factory=clicksam_version)
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def make(cls, weights_digest: str, kind: str, opset: int, **options: object) -> "GraphKey":
        """A key with ``options`` given as keywords (values turned into strings)."""
        return cls(weights_digest, kind, int(opset), options=tuple(sorted((k, str(v)) for k, v in options.items())))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = [list(pair) for pair in self.options]
        return data

    @property
    def folder_name(self) -> str:
        """``<kind>-<first 16 hex digits of the key's sha256>`` (readable in a directory listing)."""
        digest = hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()
        safe_kind = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.kind)
        return f"{safe_kind}-{digest[:16]}"


def module_digest(module: Any) -> str:
    """sha256 over a module's class and tensors (names, shapes, float32 bytes): what a graph traced
    from it depends on (a method's plugin or refiner)."""
    h = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(f"{name}:{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def graph_cache_dir(cache_dir: Optional[PathLike] = None) -> Path:
    """The folder of cached graphs: ``<cache_dir>/onnx``, by default under
    :func:`clicksam.cache.default_cache_dir` (``$CLICKSAM_CACHE`` or ``~/.cache/clicksam``)."""
    from clicksam.cache import default_cache_dir

    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "onnx"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def entry_problem(entry: Path, key: GraphKey) -> Optional[str]:
    """Why the cache folder ``entry`` cannot be used for ``key`` (None when it can)."""
    manifest_path = entry / MANIFEST_FILE
    if not manifest_path.is_file():
        return "no manifest (never finished)"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest ({exc})"
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("key") != key.as_dict():
        return "the manifest names another graph"
    if GRAPH_FILE not in files:
        return f"the manifest lists no {GRAPH_FILE}"
    for name, expected in files.items():
        path = entry / name
        if not path.is_file():
            return f"{name} is missing"
        stat = path.stat()
        if stat.st_size != expected.get("bytes"):
            return f"{name} has {stat.st_size} bytes, the manifest says {expected.get('bytes')}"
        stamp = (str(path), stat.st_size, stat.st_mtime_ns)
        if not _VERIFIED.get(stamp):
            if file_sha256(path) != expected.get("sha256"):
                return f"{name} does not match its sha256 (damaged)"
            _VERIFIED[stamp] = True
    return None


@contextlib.contextmanager
def build_lock(entry: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<entry>.lock`` (no-op where ``fcntl`` is unavailable)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: concurrent builds write identical files, the last manifest wins
        yield
        return
    with open(entry.parent / f"{entry.name}.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def commit_entry(staging: Path, entry: Path, key: GraphKey) -> None:
    """Move the files built in ``staging`` into ``entry`` and write its manifest last."""
    if entry.exists():
        shutil.rmtree(entry)
    entry.mkdir(parents=True)
    files = {}
    for path in sorted(staging.iterdir()):
        if not path.is_file():
            raise RuntimeError(f"a graph build left a folder {path.name} behind; builds must write plain files")
        files[path.name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(path, entry / path.name)
    atomic_write_json(entry / MANIFEST_FILE, {"format": MANIFEST_FORMAT, "key": key.as_dict(), "files": files})


def cached_graph(
    key: GraphKey,
    build: Callable[[Path], None],
    cache_dir: Optional[PathLike] = None,
    log: Optional[Callable[[str], None]] = None,
) -> Path:
    """The path of the cached ``graph.onnx`` for ``key``, built first when the cache has no valid entry.

    Args:
        key: what the graph depends on (see :class:`GraphKey`).
        build: ``build(folder)`` writes ``folder / "graph.onnx"`` (and any tensor file it
            references by a relative name) into an empty private folder.
        cache_dir: the cache root (default ``$CLICKSAM_CACHE`` or ``~/.cache/clicksam``); graphs go
            to its ``onnx`` subfolder.
        log: called with one line when a graph is built or a damaged entry is replaced.
    Returns:
        the path of ``graph.onnx`` inside the entry folder (load it by path: a large graph's
        tensors sit in a file beside it).
    """
    root = graph_cache_dir(cache_dir)
    entry = root / key.folder_name
    if entry_problem(entry, key) is None:
        return entry / GRAPH_FILE
    with build_lock(entry):
        problem = entry_problem(entry, key)  # another process may have built it meanwhile
        if problem is None:
            return entry / GRAPH_FILE
        for stale in root.glob(f".{key.folder_name}.*"):  # a build killed mid-way (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        if log is not None:
            reason = "" if problem.startswith("no manifest") and not entry.exists() else f" (cached copy unusable: {problem})"
            log(f"exporting the {key.kind} ONNX graph to {entry}{reason}")
        staging = Path(tempfile.mkdtemp(prefix=f".{key.folder_name}.", dir=root))
        try:
            build(staging)
            if not (staging / GRAPH_FILE).is_file():
                raise RuntimeError(f"the {key.kind} graph build wrote no {GRAPH_FILE}")
            commit_entry(staging, entry, key)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return entry / GRAPH_FILE


def save_graph(proto: Any, path: Path) -> Path:
    """Write an ``onnx.ModelProto`` to ``path``; a graph whose tensors exceed
    :data:`EXTERNAL_DATA_BYTES` keeps them in ``<name>.data`` beside it (one file)."""
    import onnx

    tensor_bytes = sum(t.ByteSize() for t in proto.graph.initializer)
    if tensor_bytes > EXTERNAL_DATA_BYTES:
        data_name = f"{path.name}.data"
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
    else:
        onnx.save_model(proto, str(path))
    return path
