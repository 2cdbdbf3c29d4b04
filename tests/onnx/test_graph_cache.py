"""The cache of exported graphs: reuse, keys, damaged entries rebuilt, failed builds leave nothing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clicksam.onnx.graph_cache import GRAPH_FILE, MANIFEST_FILE, GraphKey, cached_graph, graph_cache_dir, save_graph


def identity_proto(values: np.ndarray):
    """A graph y = x + c with a constant c (its tensor is what the external-data test moves)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(values)])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(values)])],
        [numpy_helper.from_array(values.astype(np.float32), "c")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class CountingBuild:
    def __init__(self, values=np.arange(4.0)) -> None:
        self.calls = 0
        self.values = values

    def __call__(self, folder: Path) -> None:
        self.calls += 1
        assert list(folder.iterdir()) == []  # a private, empty folder
        save_graph(identity_proto(self.values), folder / GRAPH_FILE)


def run_graph(path: Path, x: np.ndarray) -> np.ndarray:
    from clicksam.onnx.sessions import make_session

    return make_session(path, num_threads=1).run(None, {"x": x.astype(np.float32)})[0]


@pytest.fixture
def key() -> GraphKey:
    return GraphKey.make("params:abc", "test-graph", 17, revision=1)


def test_built_once_then_reused(key, tmp_path):
    build, lines = CountingBuild(), []
    first = cached_graph(key, build, tmp_path, lines.append)
    second = cached_graph(key, build, tmp_path, lines.append)
    assert first == second and build.calls == 1
    assert first.parent.parent == graph_cache_dir(tmp_path) == tmp_path / "onnx"
    assert first.parent.name.startswith("test-graph-") and len(lines) == 1 and "exporting the test-graph" in lines[0]
    manifest = json.loads((first.parent / MANIFEST_FILE).read_text())
    assert manifest["key"]["weights_digest"] == "params:abc" and manifest["key"]["options"] == [["revision", "1"]]
    assert manifest["files"][GRAPH_FILE]["bytes"] == first.stat().st_size
    np.testing.assert_array_equal(run_graph(first, np.ones(4)), 1 + np.arange(4.0))
    leftovers = [p.name for p in graph_cache_dir(tmp_path).iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no staging folder left behind


def test_every_key_field_separates_entries(key, tmp_path):
    import clicksam

    assert key.version == clicksam.__version__
    variants = [
        key,
        GraphKey.make("params:abd", "test-graph", 17, revision=1),
        GraphKey.make("params:abc", "test-graph-int8", 17, revision=1),
        GraphKey.make("params:abc", "test-graph", 18, revision=1),
        GraphKey.make("params:abc", "test-graph", 17, revision=2),
        GraphKey("params:abc", "test-graph", 17, version="0.0.0", options=(("revision", "1"),)),
    ]
    build = CountingBuild()
    paths = {cached_graph(k, build, tmp_path) for k in variants}
    assert len(paths) == len(variants) == build.calls


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete_graph", "delete_manifest", "foreign_manifest", "garbage_manifest"])
def test_damaged_entry_is_rebuilt(damage, key, tmp_path):
    build, lines = CountingBuild(), []
    path = cached_graph(key, build, tmp_path)
    manifest = path.parent / MANIFEST_FILE
    data = path.read_bytes()
    if damage == "flip_byte":  # same size, different content (the constant's bytes sit at the end)
        path.write_bytes(data[:-30] + bytes([data[-30] ^ 0xFF]) + data[-29:])
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "delete_graph":
        path.unlink()
    elif damage == "delete_manifest":
        manifest.unlink()
    elif damage == "foreign_manifest":
        other = json.loads(manifest.read_text())
        other["key"]["weights_digest"] = "params:other"
        manifest.write_text(json.dumps(other))
    else:
        manifest.write_text("{not json")
    again = cached_graph(key, build, tmp_path, lines.append)
    assert again == path and build.calls == 2
    assert len(lines) == 1 and ("unusable" in lines[0] or damage == "delete_manifest")
    np.testing.assert_array_equal(run_graph(again, np.zeros(4)), np.arange(4.0))
    assert cached_graph(key, build, tmp_path) == path and build.calls == 2


def test_failed_build_leaves_no_entry(key, tmp_path):
    def broken(folder: Path) -> None:
        (folder / "half-written").write_bytes(b"x")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        cached_graph(key, broken, tmp_path)

    def writes_nothing(folder: Path) -> None:
        pass

    with pytest.raises(RuntimeError, match="wrote no graph.onnx"):
        cached_graph(key, writes_nothing, tmp_path)
    root = graph_cache_dir(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == [f"{key.folder_name}.lock"]
    build = CountingBuild()
    cached_graph(key, build, tmp_path)
    assert build.calls == 1


def test_a_killed_build_leaves_nothing_behind_after_the_next(key, tmp_path):
    root = graph_cache_dir(tmp_path)
    stale = root / f".{key.folder_name}.abc123"  # the staging folder of a process killed mid-build
    stale.mkdir(parents=True)
    (stale / GRAPH_FILE).write_bytes(b"half")
    other = root / ".other-graph-0123456789abcdef.xyz"  # another key's build may be running: untouched
    other.mkdir()
    cached_graph(key, CountingBuild(), tmp_path)
    assert not stale.exists() and other.exists()


def test_large_graph_keeps_tensors_beside_it(key, tmp_path, monkeypatch):
    """Graphs over the protobuf limit (ViT-H) store their tensors in one external file; forced here
    with a threshold of 0 bytes. Damage to that file is caught like damage to the graph."""
    import clicksam.onnx.graph_cache as graph_cache

    monkeypatch.setattr(graph_cache, "EXTERNAL_DATA_BYTES", 0)
    values = np.linspace(0, 1, 600)  # over the 1 KiB size at which onnx moves a tensor out
    build = CountingBuild(values)
    path = cached_graph(key, build, tmp_path)
    data_file = path.parent / f"{GRAPH_FILE}.data"
    assert data_file.is_file() and data_file.stat().st_size == 600 * 4
    assert set(json.loads((path.parent / MANIFEST_FILE).read_text())["files"]) == {GRAPH_FILE, data_file.name}
    np.testing.assert_allclose(run_graph(path, np.zeros(600)), values.astype(np.float32))
    data_file.write_bytes(b"\0" * data_file.stat().st_size)
    assert cached_graph(key, build, tmp_path) == path and build.calls == 2
    np.testing.assert_allclose(run_graph(path, np.zeros(600)), values.astype(np.float32))
