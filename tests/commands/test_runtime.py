"""``--runtime`` / ``--encoder-precision`` on segment, embed, eval and serve."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clicksam.cli import main

pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")


@pytest.fixture
def graph_cache(tmp_path_factory, monkeypatch):
    """One cache folder for the whole module, so the tiny model's graphs are exported once."""
    folder = tmp_path_factory.getbasetemp() / "runtime-flags-cache"
    monkeypatch.setenv("CLICKSAM_CACHE", str(folder))
    return folder


@pytest.mark.parametrize("verb", ["segment", "embed", "eval", "serve"])
def test_int8_without_onnx_is_one_line(verb, verb_args, capsys, no_serving):
    assert main(verb_args(verb, "tiny", "--encoder-precision", "int8")) == 2
    err = capsys.readouterr().err
    assert "--runtime onnx" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("verb", ["segment", "embed", "eval", "serve"])
def test_unknown_runtime_is_refused_by_the_parser(verb, verb_args, capsys):
    with pytest.raises(SystemExit):
        main(verb_args(verb, "tiny", "--runtime", "tensorrt"))
    assert "invalid choice" in capsys.readouterr().err


def test_segment_on_onnx_matches_torch(verb_args, tmp_path, graph_cache):
    args = verb_args("segment", "tiny")
    assert main(args) == 0
    torch_mask = np.array(Image.open(tmp_path / "m.png"))
    out = tmp_path / "onnx.png"
    args[args.index("-o") + 1] = str(out)
    assert main(args + ["--runtime", "onnx"]) == 0
    assert (np.array(Image.open(out)) != torch_mask).mean() < 1e-3
    int8 = tmp_path / "int8.png"
    args[args.index("-o") + 1] = str(int8)
    assert main(args + ["--runtime", "onnx", "--encoder-precision", "int8"]) == 0
    assert np.array(Image.open(int8)).shape == torch_mask.shape


def test_embed_cache_keeps_precisions_apart(verb_args, graph_cache, capsys):
    args = verb_args("embed", "tiny")
    assert main(args) == 0
    assert "2 encoded" in capsys.readouterr().out
    int8 = args + ["--runtime", "onnx", "--encoder-precision", "int8"]
    assert main(int8) == 0
    assert "2 encoded" in capsys.readouterr().out  # int8 embeddings are not the fp32 ones
    assert main(int8) == 0
    assert "2 already in" in capsys.readouterr().out
    assert main(args) == 0
    assert "2 already in" in capsys.readouterr().out


def test_embed_store_refuses_onnx(tmp_path, capsys):
    assert main(["embed", "--dataset", "synthetic", "--out", str(tmp_path / "s"), "--runtime", "onnx"]) == 2
    assert "torch in fp32" in capsys.readouterr().err


def test_eval_records_the_runtime_and_refuses_a_mixed_resume(verb_args, tmp_path, graph_cache, capsys):
    args = verb_args("eval", "tiny", "--runtime", "onnx", "--encoder-precision", "int8")
    assert main(args) == 0
    config = json.loads((tmp_path / "ev" / "run.json").read_text())
    assert config["segmenter"]["runtime"] == "onnx" and config["segmenter"]["encoder_precision"] == "int8"
    assert main(verb_args("eval", "tiny")) == 2  # the same folder with torch fp32
    assert "other settings" in capsys.readouterr().err


def test_serve_builds_an_onnx_factory(verb_args, graph_cache, no_serving):
    assert main(verb_args("serve", "tiny", "--runtime", "onnx")) == 0
    app, _ = no_serving[0]
    factory = app.state.service.factory
    assert factory.runtime.name == "onnx" and factory.runtime.encoder_precision == "fp32"
