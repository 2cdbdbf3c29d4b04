"""``clicksam models``: a file is "cached" only when complete; --verify checks its sha256; random models say so."""
from __future__ import annotations

import json

from clicksam.cache import default_cache_dir
from clicksam.cli import main


def _rows(capsys) -> dict[str, dict]:
    assert main(["models", "--json"]) in (0, 1)
    return {r["name"]: r for r in json.loads(capsys.readouterr().out)}


def test_truncated_file_is_incomplete_not_cached(official_tiny, capsys):
    info = official_tiny()
    path = default_cache_dir() / info.filename
    path.write_bytes(path.read_bytes()[:-100])
    row = _rows(capsys)["tiny"]
    assert row["cached"] is False and row["state"] == f"incomplete ({info.num_bytes - 100:,} of {info.num_bytes:,} bytes)"
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "incomplete" in table and "clicksam download tiny" in table


def test_complete_file_is_cached_and_verify_checks_the_sha256(official_tiny, capsys):
    info = official_tiny()
    assert _rows(capsys)["tiny"]["state"] == "cached"
    assert main(["models", "--verify", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}  # the methods' published files follow
    assert rows["tiny"]["state"] == "cached, sha256 verified"
    path = default_cache_dir() / info.filename
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    path.write_bytes(bytes(data))
    assert _rows(capsys)["tiny"]["cached"] is True  # the size alone cannot tell
    assert main(["models", "--verify"]) == 1
    out = capsys.readouterr().out
    assert "corrupt (sha256 mismatch)" in out and "clicksam download tiny --force" in out


def test_absent_and_partial_downloads(official_tiny, capsys):
    assert _rows(capsys)["tiny"]["state"] == "not downloaded"
    cache = default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "tiny_official.pth.part").write_bytes(b"x" * 10)
    assert _rows(capsys)["tiny"]["state"].startswith("partial download (0%")


def test_models_without_weights_say_they_are_random(capsys):
    rows = _rows(capsys)
    assert rows["tiny"]["random_weights"] is True and rows["tiny"]["state"] == "random weights (test config)"
    assert rows["vit_b"]["random_weights"] is False and rows["vit_b"]["state"] == "not downloaded"
    assert main(["models"]) == 0
    assert "random weights (test config)" in capsys.readouterr().out
