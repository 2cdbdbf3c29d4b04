"""The family-neutral loading helpers of :mod:`clicksam.models.official_files`."""
from __future__ import annotations

import torch
from torch import nn

from clicksam.models.official_files import identify_config, is_ignored, split_ignored


def test_ignored_names_are_exact_or_dotted_prefixes():
    ignored = ("no_obj_ptr", "memory_encoder.")
    assert is_ignored("no_obj_ptr", ignored) and is_ignored("memory_encoder.fuser.0.weight", ignored)
    assert not is_ignored("no_obj_ptr_proj.weight", ignored)  # an exact name is not a prefix
    assert not is_ignored("memory_encoder_extra", ignored)
    kept, skipped = split_ignored({"a": torch.zeros(1), "no_obj_ptr": torch.zeros(1), "memory_encoder.x": torch.zeros(1)}, ignored)
    assert list(kept) == ["a"] and skipped == ["memory_encoder.x", "no_obj_ptr"]


def test_identify_config_by_keys_and_shapes():
    configs = [2, 3]
    build = lambda width: nn.Linear(width, 4)  # noqa: E731
    assert identify_config(nn.Linear(3, 4).state_dict(), configs, build) == 3
    assert identify_config(nn.Linear(5, 4).state_dict(), configs, build) is None
