"""The runner's tests use the training library's fixtures (a tiny model's embedding store)."""
from __future__ import annotations

from tests.train.conftest import SYNTHETIC, tiny_config, tiny_store  # noqa: F401  (fixtures)
