"""The image encoder on onnxruntime (fp32 and int8) against ``Sam.encode`` on the tiny model."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from clicksam.onnx.encoder import OnnxEncoder, export_encoder


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("encoder-graphs")


@pytest.fixture(scope="module")
def model(tiny_model):
    """The tiny model with non-zero relative and absolute positions (untrained, both are zero)."""
    import copy

    from tests.onnx.test_encoder_model import randomize

    return randomize(copy.deepcopy(tiny_model)).eval()


@pytest.fixture(scope="module")
def fp32_encoder(model, graph_dir) -> OnnxEncoder:
    return OnnxEncoder.from_model(model, "fp32", num_threads=1, cache_dir=graph_dir, log=None)


@pytest.fixture(scope="module")
def int8_encoder(model, graph_dir) -> OnnxEncoder:
    return OnnxEncoder.from_model(model, "int8", num_threads=1, cache_dir=graph_dir, log=None)


@pytest.fixture(scope="module")
def photo_input(model) -> torch.Tensor:
    """src/clicksam/examples/coffee.jpg as the predictor prepares it: resized, normalised, padded, 1x3x1024x1024."""
    from pathlib import Path

    import clicksam

    predictor = clicksam.SamPredictor(model)
    predictor.set_image(clicksam.read_image(Path(__file__).resolve().parents[2] / "src" / "clicksam" / "examples" / "coffee.jpg"))
    return predictor.input_image


@pytest.fixture(scope="module")
def reference(model, photo_input) -> torch.Tensor:
    with torch.inference_mode():
        return model.encode(photo_input)


def sqnr_db(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (ours - ref).pow(2).sum()))


def test_fp32_matches_sam_encode(fp32_encoder, model, photo_input, reference):
    from clicksam.cache import encoder_digest

    ours = fp32_encoder.encode(photo_input)
    assert ours.shape == reference.shape == (1, 256, 64, 64) and ours.dtype == torch.float32
    scale = reference.abs().max()
    assert float((ours - reference).abs().max() / scale) < 1e-5
    assert fp32_encoder.precision == "fp32" and fp32_encoder.image_size == 1024
    meta = fp32_encoder.metadata
    assert meta["format"] == "sam-encoder" and meta["model"] == "tiny" and meta["quantization"] == "none"
    assert meta["weights_digest"] == encoder_digest(model)


def test_batch_of_two_and_numpy_run(fp32_encoder, model):
    x = torch.randn(2, 3, 1024, 1024, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ref = model.encode(x)
    out = fp32_encoder.run(x.numpy())
    assert isinstance(out, np.ndarray) and out.shape == (2, 256, 64, 64)
    assert np.abs(out - ref.numpy()).max() / ref.abs().max().item() < 1e-5


def test_int8_is_close_and_smaller(int8_encoder, fp32_encoder, photo_input, reference):
    ours = int8_encoder.encode(photo_input)
    assert int8_encoder.precision == "int8" and int8_encoder.metadata["quantization"].startswith("dynamic weight_type=int8")
    cosine = torch.nn.functional.cosine_similarity(ours.flatten(), reference.flatten(), dim=0)
    assert sqnr_db(ours, reference) > 25 and float(cosine) > 0.99
    assert sqnr_db(ours, reference) < 80  # it is quantised, not the fp32 graph again
    assert int8_encoder.path.stat().st_size < fp32_encoder.path.stat().st_size
    assert int8_encoder.path.parent != fp32_encoder.path.parent


def test_cached_graph_is_reused_and_damage_reexports(model, fp32_encoder, graph_dir, tmp_path, photo_input, reference):
    import shutil

    shutil.copytree(graph_dir / "onnx", tmp_path / "onnx")  # the module's cache, exported once already
    lines: list[str] = []
    path = export_encoder(model, cache_dir=tmp_path, log=lines.append)
    assert path.parent.name == fp32_encoder.path.parent.name and lines == []  # reused, not exported
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zero a run of weights: same size, wrong content
    path.write_bytes(bytes(data))
    again = export_encoder(model, cache_dir=tmp_path, log=lines.append)
    assert again == path and len(lines) == 1 and "sha256" in lines[0]
    ours = OnnxEncoder(again, num_threads=1).encode(photo_input)
    assert float((ours - reference).abs().max() / reference.abs().max()) < 1e-5


def test_errors(fp32_encoder, tiny_model, four_mask_file, tmp_path):
    with pytest.raises(ValueError, match="precision"):
        export_encoder(tiny_model, "fp16", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="opset"):
        export_encoder(tiny_model, opset=12, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="clicksam Sam"):
        export_encoder(torch.nn.Linear(2, 2), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="1x3x1024x1024|Bx3x1024x1024"):
        fp32_encoder.run(np.zeros((1, 3, 512, 512), np.float32))
    with pytest.raises(ValueError, match="torch tensor"):
        fp32_encoder.encode(np.zeros((1, 3, 1024, 1024), np.float32))
    with pytest.raises(RuntimeError, match="not a SAM image encoder"):
        OnnxEncoder(four_mask_file)
    with pytest.raises(FileNotFoundError):
        OnnxEncoder(tmp_path / "missing.onnx")
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "onnx"])


def test_missing_onnxruntime_gives_the_install_hint(monkeypatch, tiny_model, tmp_path, fp32_encoder):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(RuntimeError, match=r"pip install 'clicksam\[onnx\]'") as info:
        OnnxEncoder(fp32_encoder.path)
    assert "\n" not in str(info.value)
    with pytest.raises(RuntimeError, match=r"pip install 'clicksam\[onnx\]'"):
        export_encoder(tiny_model, "int8", cache_dir=tmp_path, log=None)


def test_large_graph_layout_round_trip(model, tmp_path, monkeypatch, photo_input, reference):
    """ViT-H's graph is over protobuf's 2 GiB: its tensors go to one file beside the graph, and the
    int8 graph is quantised from that layout. Forced here on the tiny model with a 0-byte threshold."""
    import clicksam.onnx.graph_cache as graph_cache

    monkeypatch.setattr(graph_cache, "EXTERNAL_DATA_BYTES", 0)
    fp32 = export_encoder(model, cache_dir=tmp_path, log=None)
    assert (fp32.parent / "graph.onnx.data").stat().st_size > fp32.stat().st_size
    ours = OnnxEncoder(fp32, num_threads=1).encode(photo_input)
    assert float((ours - reference).abs().max() / reference.abs().max()) < 1e-5
    int8 = OnnxEncoder(export_encoder(model, "int8", cache_dir=tmp_path, log=None), num_threads=1)
    assert (int8.path.parent / "graph.onnx.data").is_file()
    assert sqnr_db(int8.encode(photo_input), reference) > 25
