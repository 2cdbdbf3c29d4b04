"""``clicksam label-studio``: the labelling config, arguments, and a backend built from them."""
from __future__ import annotations

import pytest

from clicksam.cli import build_parser, main
from clicksam.labelstudio.cli import CONFIG_PATH, _basic_auth, build_backend
from clicksam.labelstudio.protocol import LabelConfig


def args_for(*extra):
    return build_parser().parse_args(["label-studio", "--model", "tiny", *extra])


def test_print_config(capsys):
    assert main(["label-studio", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert printed == CONFIG_PATH.read_text() and LabelConfig.parse(printed).prompts


def test_help_names_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["label-studio", "--help"])
    out = capsys.readouterr().out
    for option in ("--method", "--checkpoint", "--port", "--label-studio-url", "--document-root", "--media-dir",
                   "--negative-label", "--print-config"):
        assert option in out


def test_build_backend(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(tmp_path))
    backend = build_backend(args_for("--negative-label", "BG", "--embeddings", str(tmp_path / "emb")), tiny_model)
    assert backend.model_version == "clicksam-tiny-sam-random-weights" and backend.negative_labels == {"bg"}
    assert backend.images.document_root == tmp_path and backend.sessions.cache.directory == tmp_path / "emb"
    connected = build_backend(args_for("--label-studio-url", "http://127.0.0.1:8080", "--label-studio-api-key", "k"),
                              tiny_model)
    assert connected.images.connection.url == "http://127.0.0.1:8080"


@pytest.mark.parametrize("extra, message", [
    (("--method", "sam+nonsense"), "unknown method stage"),
    (("--method", "focsam"), "'focsam' stage is not attached"),
    (("--label-studio-api-key", "k"), "needs --label-studio-url"),
    (("--label-studio-url", "127.0.0.1:8080"), "http:// or https://"),
    (("--max-tasks", "0"), "--max-tasks"),
])
def test_bad_arguments(tiny_model, extra, message):
    with pytest.raises(ValueError, match=message):
        build_backend(args_for(*extra), tiny_model)


def test_command_errors_are_messages(capsys):
    assert main(["label-studio", "--model", "tiny", "--port", "0"]) == 2
    assert "--port must be 1-65535" in capsys.readouterr().err
    assert main(["label-studio", "--model", "tiny", "--method", "sam+nonsense"]) == 2
    assert "unknown method stage" in capsys.readouterr().err


def test_basic_auth_argument(monkeypatch):
    monkeypatch.delenv("BASIC_AUTH_USER", raising=False)
    assert _basic_auth(None) is None and _basic_auth("u:p:q") == ("u", "p:q")
    monkeypatch.setenv("BASIC_AUTH_USER", "a")
    monkeypatch.setenv("BASIC_AUTH_PASS", "b")
    assert _basic_auth(None) == ("a", "b")
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        _basic_auth("nocolon")


def test_an_untrained_refusing_stage_is_refused_at_start():
    import clicksam

    model = clicksam.build_sam("tiny", methods=["focsam"])
    with pytest.raises(ValueError, match="no trained weights"):
        build_backend(args_for("--method", "focsam"), model)
