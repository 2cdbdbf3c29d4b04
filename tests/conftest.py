"""Shared pytest fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``../shared`` folder beside the checkout (benchmark data, reference facts)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"../shared/data not found at {SHARED}: the benchmark data ships only with CI and developer machines")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Point the checkpoint/embedding cache at a temporary folder so tests never touch ~/.cache."""
    monkeypatch.setenv("CLICKSAM_CACHE", str(tmp_path_factory.mktemp("clicksam-cache")))


@pytest.fixture(scope="session")
def tiny_model():
    """The untrained ``tiny`` SAM (seeded, shared by the tests that only read it)."""
    import torch

    import clicksam

    torch.manual_seed(0)
    return clicksam.build_sam("tiny")


@pytest.fixture
def photo():
    """A real photo from the package's examples (H×W×3 uint8 RGB, 400×600)."""
    from clicksam.commands.demo import EXAMPLES
    from clicksam.images import read_image

    return read_image(EXAMPLES / "coffee.jpg")


@pytest.fixture
def tiny_predictor(tiny_model, photo):
    import clicksam

    predictor = clicksam.SamPredictor(tiny_model)
    predictor.set_image(photo)
    return predictor
