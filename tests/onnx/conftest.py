"""Fixtures of the ONNX tests: the tiny model exported once per session (float, four masks, and
single-mask through the CLI), plus helpers that build the graph's inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="the [onnx] extra (onnx, onnxruntime) is not installed")
pytest.importorskip("onnxruntime", reason="the [onnx] extra (onnx, onnxruntime) is not installed")


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One torch thread while these tests run: the CI and developer machines are small and
    shared, and two threads on a busy two-core machine make each decode several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="session")
def four_mask_file(tiny_model, onnx_dir) -> Path:
    """The tiny model's decoder, all four masks, float32, opset 17."""
    from clicksam.onnx import export_decoder

    return export_decoder(tiny_model, onnx_dir / "four.onnx")


@pytest.fixture(scope="session")
def single_mask_file(tiny_model, onnx_dir) -> Path:
    """The same weights exported through the CLI with --return-single-mask.

    The CLI builds its own tiny model; seeding as the session's ``tiny_model`` fixture does gives
    it the same random weights (the single-mask parity tests would fail otherwise)."""
    from clicksam.cli import main

    torch.manual_seed(0)
    path = onnx_dir / "single.onnx"
    assert main(["export-onnx", "--model", "tiny", "--return-single-mask", "-o", str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def ort_session_factory():
    import onnxruntime as ort

    cache: dict[Path, object] = {}

    def make(path: Path):
        if path not in cache:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            cache[path] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return cache[path]

    return make


@pytest.fixture(scope="session")
def embedding() -> torch.Tensor:
    return torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(1))


def make_feed(
    embedding: torch.Tensor,
    coords: np.ndarray,
    labels: np.ndarray,
    mask_input: np.ndarray | None = None,
    orig_size: tuple[int, int] = (400, 600),
) -> dict[str, np.ndarray]:
    """The graph's inputs for prompts already in the 1024 frame (padding/box labels included)."""
    has_mask = mask_input is not None
    return {
        "image_embeddings": embedding.numpy(),
        "point_coords": np.asarray(coords, np.float32)[None],
        "point_labels": np.asarray(labels, np.float32)[None],
        "mask_input": (np.asarray(mask_input, np.float32) if has_mask else np.zeros((1, 1, 256, 256), np.float32)),
        "has_mask_input": np.array([1.0 if has_mask else 0.0], np.float32),
        "orig_im_size": np.array(orig_size, np.float32),
    }
