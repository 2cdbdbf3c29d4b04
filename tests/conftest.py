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
