"""atomic_path: the rename happens only on success, with the usual permissions."""
from __future__ import annotations

import os
import stat

import pytest

from clicksam.io.atomic import atomic_path, atomic_write_bytes


def test_success_renames_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and not target.exists()
        tmp.write_bytes(b"abc")
    assert target.read_bytes() == b"abc"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert list(target.parent.iterdir()) == [target]


def test_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
