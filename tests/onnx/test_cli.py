"""``clicksam export-onnx`` (the single-mask export itself runs in the ``single_mask_file`` fixture)."""
from __future__ import annotations

import pytest

from clicksam.cli import main


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        main(["export-onnx", "--help"])
    out = capsys.readouterr().out
    for option in ("--model", "--checkpoint", "--output", "--return-single-mask", "--opset", "--quantize"):
        assert option in out


def test_single_mask_export_via_cli(single_mask_file):
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(single_mask_file)).metadata_props}
    assert meta["clicksam.return_single_mask"] == "1"


def test_quantize_writes_a_quantized_file(four_mask_file, tmp_path, monkeypatch, capsys):
    """The CLI's --quantize path end to end, reusing the session's trace to save time."""
    import onnx

    import clicksam.onnx.export as export_module
    from clicksam.onnx import OnnxDecoder

    traced = four_mask_file.read_bytes()
    monkeypatch.setattr(export_module, "trace_decoder", lambda model, **kwargs: traced)
    out = tmp_path / "nested" / "decoder.onnx"
    assert main(["export-onnx", "--model", "tiny", "-o", str(out), "--quantize"]) == 0
    assert "uint8-quantized" in capsys.readouterr().out
    proto = onnx.load(str(out))
    assert {p.key: p.value for p in proto.metadata_props}["clicksam.quantized"] == "1"
    assert any(node.op_type == "MatMulInteger" for node in proto.graph.node)
    assert OnnxDecoder(out).metadata["quantized"] == "1"


def test_bad_opset_fails_before_loading(tmp_path, capsys):
    out = tmp_path / "d.onnx"
    assert main(["export-onnx", "--model", "tiny", "-o", str(out), "--opset", "11"]) == 2
    err = capsys.readouterr().err
    assert "opset 11 is not supported" in err and "14-20" in err
    assert not out.exists()


def test_missing_checkpoint_is_explained(tmp_path, capsys):
    assert main(["export-onnx", "--model", "vit_b", "-o", str(tmp_path / "d.onnx")]) == 2
    err = capsys.readouterr().err
    assert "export-onnx: error" in err and "vit_b" in err


def test_output_is_required(capsys):
    with pytest.raises(SystemExit):
        main(["export-onnx", "--model", "tiny"])
    assert "-o/--output" in capsys.readouterr().err
