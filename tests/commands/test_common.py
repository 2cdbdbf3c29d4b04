"""What every model-building verb shares: weights refused / cached / random on request, and --device."""
from __future__ import annotations

import json

import pytest
import torch

from clicksam.cli import main

VERBS = ("segment", "embed", "eval", "train", "export-onnx", "serve", "demo")


@pytest.mark.parametrize("verb", VERBS)
def test_every_model_verb_offers_random_weights(verb, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    assert "--random-weights" in capsys.readouterr().out


@pytest.mark.parametrize("verb", VERBS)
def test_every_model_verb_refuses_a_real_size_without_weights(verb, verb_args, official_tiny, no_serving, capsys):
    assert main(verb_args(verb)) == 2
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert "tiny_official.pth" in text and "put it at" in text and "--random-weights" in text
    assert "Traceback" not in text and not no_serving


@pytest.mark.parametrize("verb", ["segment", "embed", "eval", "train", "export-onnx", "serve"])
def test_random_weights_on_request_run_and_say_so(verb, verb_args, official_tiny, no_serving, capsys):
    pytest.importorskip("onnx") if verb == "export-onnx" else None
    assert main(verb_args(verb, "tiny", "--random-weights")) == 0
    assert "random weights" in capsys.readouterr().err


def test_eval_uses_the_cached_official_file(verb_args, official_tiny, tmp_path, capsys):
    info = official_tiny()
    assert main(verb_args("eval")) == 0
    run = json.loads((tmp_path / "ev" / "run.json").read_text())
    assert run["segmenter"]["weights_sha256"] == info.sha256 and run["random_weights"] is False
    assert "random weights" not in capsys.readouterr().err


def test_eval_with_random_weights_is_flagged_in_the_table(verb_args, official_tiny, tmp_path, capsys):
    assert main(verb_args("eval", "tiny", "--random-weights")) == 0
    assert "random weights" in (tmp_path / "ev" / "results.md").read_text()


def test_serve_page_info_says_the_weights_are_random(verb_args, official_tiny, no_serving):
    from fastapi.testclient import TestClient

    assert main(verb_args("serve", "tiny", "--random-weights")) == 0
    with TestClient(no_serving[-1][0], base_url="http://127.0.0.1") as client:
        assert client.get("/api/info").json()["random_weights"] is True
    official_tiny()
    assert main(verb_args("serve")) == 0
    with TestClient(no_serving[-1][0], base_url="http://127.0.0.1") as client:
        assert client.get("/api/info").json()["random_weights"] is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("verb", VERBS)
def test_device_cuda_on_a_cpu_build_is_one_line(verb, verb_args, no_serving, capsys):
    args = verb_args(verb, "tiny", config_extra={"device": "cuda"}) if verb == "train" else verb_args(verb, "tiny", "--device", "cuda")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "use --device cpu" in err and "Traceback" not in err


def test_resolve_device():
    from clicksam.commands.common import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'gpu' is not a torch device"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda:0")
