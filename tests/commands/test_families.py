"""Every model-building verb on the SAM 2.1 and HQ-SAM test configs (``sam2_tiny``, ``hq_tiny``):
segment, embed, eval, train (the decoder method, and its file loaded back), serve, label-studio,
demo, models and download; export-onnx refuses them with what to do instead."""
from __future__ import annotations

import json

import pytest
import torch

import clicksam
from clicksam.cli import main

FAMILY_MODELS = ("sam2_tiny", "hq_tiny")


@pytest.mark.parametrize("model", FAMILY_MODELS)
def test_segment_embed_and_eval(model, verb_args, tmp_path, capsys):
    assert main(verb_args("segment", model)) == 0
    assert (tmp_path / "m.png").is_file() and "predicted IoU" in capsys.readouterr().out
    assert main(verb_args("embed", model)) == 0
    assert "2 images: 2 encoded" in capsys.readouterr().out
    assert main(verb_args("embed", model)) == 0  # the bundles come back from the cache
    assert "0 encoded" in capsys.readouterr().out
    assert main(verb_args("eval", model, "--method", "stable-sam+sam-ref")) == 0
    assert model in (tmp_path / "ev" / "summary.json").read_text()


@pytest.mark.parametrize("model", FAMILY_MODELS)
def test_train_the_decoder_and_load_its_file(model, verb_args, tmp_path, photo):
    """Two decoder steps from the store-less path; the method file holds the family's decoder and
    loads onto the base; SAM 2's skip projections (per-image features) are not changed."""
    assert main(verb_args("train", model, config_extra={"steps": 2, "options": {"max_clicks": 2, "click_map_size": 64}})) == 0
    method_file = tmp_path / "run" / "method.safetensors"
    base = clicksam.build_sam(model)
    trained = clicksam.build_sam(model, checkpoint=[method_file])
    decoder = trained.decoder_attribute
    changed = {k.split(".")[1] for k, v in trained.state_dict().items() if not torch.equal(v, base.state_dict()[k])}
    assert changed and all(k.startswith(decoder + ".") for k, v in trained.state_dict().items()
                           if not torch.equal(v, base.state_dict()[k]))
    assert not {"conv_s0", "conv_s1"} & changed
    predictor = clicksam.SamPredictor(trained)
    predictor.set_image(photo)
    session = clicksam.InteractiveSession(predictor)
    assert session.add_click(300, 200).shape == photo.shape[:2]


def test_a_method_file_changing_sam2s_feature_projections_is_refused(tmp_path):
    from clicksam.checkpoint import save_method_file

    model = clicksam.build_sam("sam2_tiny")
    with torch.no_grad():
        model.sam_mask_decoder.conv_s1.weight.mul_(2.0)
    path = save_method_file(tmp_path / "decoder.safetensors", model, ["sam_mask_decoder."], ["decoder"])
    with pytest.raises(ValueError, match=r"changes \['sam_mask_decoder.conv_s1.weight'\], which make the per-image features"):
        clicksam.build_sam("sam2_tiny", checkpoint=[path])


def test_serve_and_its_sessions_on_sam2(verb_args, no_serving, photo):
    from fastapi.testclient import TestClient

    from clicksam.server.backend import SamSessionFactory

    assert main(verb_args("serve", "sam2_tiny")) == 0
    with TestClient(no_serving[-1][0], base_url="http://127.0.0.1") as client:
        info = client.get("/api/info").json()
    assert info["random_weights"] is True and {m["name"] for m in info["methods"] if m["available"]} >= {"sam"}
    factory = SamSessionFactory(clicksam.build_sam("sam2_tiny"))
    session = factory.create(factory.prepare("p", photo), "sam")
    session.add_click(300, 200)
    assert session.mask.shape == photo.shape[:2] and session.score is not None


def test_label_studio_predicts_with_hq_sam(tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from clicksam.commands.demo import EXAMPLES
    from clicksam.labelstudio.app import create_app
    from tests.labelstudio.conftest import keypoint, make_backend, predict_body

    document_root = tmp_path / "files"
    (document_root / "photos").mkdir(parents=True)
    shutil.copy(EXAMPLES / "coffee.jpg", document_root / "photos" / "coffee.jpg")
    model = clicksam.build_sam("hq_tiny")
    with TestClient(create_app(make_backend(model, document_root)), raise_server_exceptions=False) as client:
        reply = client.post("/predict", json=predict_body([keypoint("a", 300, 200)])).json()
    region = reply["results"][0]["result"][0]
    predictor = clicksam.SamPredictor(model)
    predictor.set_image(clicksam.read_image(document_root / "photos" / "coffee.jpg"))
    expected = clicksam.InteractiveSession(predictor)
    expected.add_click(300, 200)
    assert region["type"] == "brushlabels" and reply["results"][0]["score"] == pytest.approx(expected.score)


def test_demo_runs_on_sam2(verb_args, tmp_path):
    assert main(verb_args("demo", "sam2_tiny")) == 0
    assert (tmp_path / "demo" / "gallery.png").is_file()


def test_models_and_download_list_the_families(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["sam2.1_hiera_t"]["family"] == "sam2" and rows["hq_vit_b"]["family"] == "hq-sam"
    assert rows["sam2.1_hiera_t"]["url"].startswith("https://dl.fbaipublicfiles.com/segment_anything_2/092824/")
    assert rows["sam2_tiny"]["random_weights"] and rows["sam2_tiny"]["state"] == "random weights (test config)"
    with pytest.raises(SystemExit):
        main(["download", "--help"])
    assert "sam2.1_hiera_l" in capsys.readouterr().out


def test_a_family_without_its_file_is_refused_and_export_onnx_says_why(verb_args, capsys):
    assert main(verb_args("segment", "sam2.1_hiera_t")) == 2
    err = capsys.readouterr().err
    assert "clicksam download sam2.1_hiera_t" in err and "--random-weights" in err and "Traceback" not in err
    pytest.importorskip("onnx")
    assert main(verb_args("export-onnx", "hq_vit_b")) == 2  # refused before any file is needed
    err = capsys.readouterr().err
    assert "the ONNX decoder graph is SAM's; hq-sam models (hq_vit_b) have no ONNX export yet" in err


def test_a_sam_onnx_decoder_refuses_a_family_predictor(tmp_path, photo):
    """An exported SAM decoder reads the embedding alone: a SAM 2 predictor's image is refused."""
    pytest.importorskip("onnxruntime")
    from clicksam.onnx import OnnxDecoder
    from clicksam.onnx.export import export_decoder

    path = export_decoder(clicksam.build_sam("tiny"), tmp_path / "d.onnx")
    predictor = clicksam.SamPredictor(clicksam.build_sam("sam2_tiny"))
    predictor.set_image(photo)
    with pytest.raises(ValueError, match=r"sam2 models \(sam2_tiny\) have no ONNX export yet"):
        OnnxDecoder(path, num_threads=1).set_predictor(predictor)
