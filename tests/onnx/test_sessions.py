"""onnxruntime session defaults: threads follow PyTorch's setting; bad values are refused."""
from __future__ import annotations

import pytest
import torch

from clicksam.onnx.sessions import default_num_threads, make_session, session_options


def test_threads_follow_torch():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert default_num_threads() == 1 and session_options().intra_op_num_threads == 1
        torch.set_num_threads(2)
        assert default_num_threads() == 2 and session_options().intra_op_num_threads == 2
    finally:
        torch.set_num_threads(before)
    options = session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts(bad):
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        session_options(bad)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        make_session(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a graph")
    with pytest.raises(RuntimeError, match="cannot load .*garbage.onnx"):
        make_session(garbage)
