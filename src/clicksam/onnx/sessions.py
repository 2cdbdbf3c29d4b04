"""onnxruntime sessions with clicksam's thread defaults.

Threads. PyTorch's intra-op pool defaults to the number of physical cores, or ``OMP_NUM_THREADS``
when it is set, and ``torch.set_num_threads(n)`` changes it for the process. clicksam's onnxruntime
sessions take the same number by default (``torch.get_num_threads()`` when the session is made), so
one setting governs both runtimes: ``OMP_NUM_THREADS=1`` or ``torch.set_num_threads(1)`` on a shared
machine, nothing on a desktop. onnxruntime's own default would count the machine's physical cores and
ignore both. Each session runs its graph with one inter-op thread (sequential execution); SAM's graphs
are chains where parallel branches gain nothing.

Memory. onnxruntime's "memory pattern" (one block planned per input shape) is off: with the encoder's
dynamic batch axis the first run fills the arena and the second adds the planned block beside it,
so a ViT-B int8 encoding held 1.07 GB after one run and 1.79 GB after two; without it the arena
stays at 1.02 GB run after run, and the run is no slower (6.0 vs 6.1-6.4 s of CPU, one thread).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from clicksam.onnx.export import import_onnxruntime

PathLike = Union[str, "os.PathLike[str]"]


def default_num_threads() -> int:
    """The intra-op threads of a new session: PyTorch's current setting (see the module docstring)."""
    import torch

    return max(1, int(torch.get_num_threads()))


def session_options(num_threads: Optional[int] = None) -> Any:
    """``onnxruntime.SessionOptions`` with ``num_threads`` intra-op threads (default
    :func:`default_num_threads`), sequential execution, every graph optimisation enabled and the
    memory pattern off (see the module docstring)."""
    ort = import_onnxruntime()
    if num_threads is None:
        num_threads = default_num_threads()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # errors only: the optimiser's notes on subgraph names are not the user's business
    return options


def make_session(path: PathLike, num_threads: Optional[int] = None, providers: Optional[Sequence[str]] = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for the graph file ``path`` (load it by path: a large
    graph's tensors sit in a file beside it).

    Raises:
        FileNotFoundError: no such file. RuntimeError: onnxruntime cannot load it (the message
        names the file and onnxruntime's reason).
    """
    ort = import_onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX graph {path} not found")
    options = session_options(num_threads)
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise RuntimeError(f"onnxruntime cannot load {path}: {exc}") from exc


def graph_metadata(session: Any) -> dict[str, str]:
    """The ``clicksam.*`` metadata of a session's graph, without the prefix (empty for foreign files)."""
    meta = session.get_modelmeta().custom_metadata_map
    return {k[len("clicksam."):]: v for k, v in meta.items() if k.startswith("clicksam.")}
