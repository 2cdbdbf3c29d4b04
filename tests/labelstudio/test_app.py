"""Every request shape of Label Studio's ML-backend protocol, through FastAPI's TestClient."""
from __future__ import annotations

import base64

import numpy as np
import pytest

import clicksam
from clicksam.images import read_image
from clicksam.labelstudio.cli import config_text
from clicksam.labelstudio.rle import rle_to_mask
from tests.labelstudio.conftest import keypoint, make_backend, predict_body, rectangle


def only_region(response):
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 1 and results[0]["model_version"] == "clicksam-test"
    regions = results[0]["result"]
    assert len(regions) == 1
    return results[0], regions[0]


def session_mask(model, document_root, *prompts):
    predictor = clicksam.SamPredictor(model)
    predictor.set_image(read_image(document_root / "photos/coffee.jpg"))
    session = clicksam.InteractiveSession(predictor, method="sam")
    for prompt in prompts:
        session.add_box(*prompt) if len(prompt) == 4 else session.add_click(*prompt)
    return session.mask, session.score


def test_health_versions_setup(client):
    for path in ("/health", "/"):
        assert client.get(path).json() == {"status": "UP", "model_class": "clicksam", "model_version": "clicksam-test"}
    assert client.get("/versions").json() == {"versions": ["clicksam-test"]}
    setup = {"project": "3.1700000000", "schema": config_text(), "hostname": "http://127.0.0.1:8080",
             "access_token": "abc", "extra_params": None}
    assert client.post("/setup", json=setup).json() == {"model_version": "clicksam-test"}
    bad = client.post("/setup", json={**setup, "schema": "<View><Image name='i' value='$i'/></View>"})
    assert bad.status_code == 422 and bad.json()["status"] == "ERROR" and "BrushLabels" in bad.json()["error"]


def test_keypoint_gives_the_sessions_mask(client, tiny_model, document_root):
    result, region = only_region(client.post("/predict", json=predict_body([keypoint("a", 300, 200)])))
    expected, score = session_mask(tiny_model, document_root, (300, 200, True))
    assert region["type"] == "brushlabels" and region["from_name"] == "mask" and region["to_name"] == "image"
    assert region["value"]["brushlabels"] == ["Object"] and (region["original_width"], region["original_height"]) == (600, 400)
    assert np.array_equal(rle_to_mask(region["value"]["rle"], 600, 400), expected)
    assert result["score"] == pytest.approx(score) and region["score"] == pytest.approx(score)


def test_rectangle_then_alt_click(client, tiny_model, document_root):
    box = rectangle("r", (150, 100, 450, 330))
    only_region(client.post("/predict", json=predict_body([box])))
    _, region = only_region(client.post("/predict", json=predict_body([keypoint("n", 200, 150, positive=False)])))
    expected, _ = session_mask(tiny_model, document_root, (150, 100, 450, 330), (200, 150, False))
    assert np.array_equal(rle_to_mask(region["value"]["rle"], 600, 400), expected)


def test_keypoints_and_rectangle_together(client, tiny_model, document_root):
    regions = [keypoint("a", 300, 200), keypoint("b", 250, 220), rectangle("r", (150, 100, 450, 330))]
    _, region = only_region(client.post("/predict", json=predict_body(regions)))
    expected, _ = session_mask(tiny_model, document_root, (150, 100, 450, 330), (300, 200, True), (250, 220, True))
    assert np.array_equal(rle_to_mask(region["value"]["rle"], 600, 400), expected)


def test_negative_label_and_several_objects(client, backend):
    only_region(client.post("/predict", json=predict_body([keypoint("a", 300, 200)])))
    _, region = only_region(client.post("/predict", json=predict_body([keypoint("n", 100, 100, label="Negative")])))
    assert region["value"]["brushlabels"] == ["Object"]  # the negative click refined the Object
    _, other = only_region(client.post("/predict", json=predict_body([keypoint("c", 50, 50, label="Other")])))
    assert other["value"]["brushlabels"] == ["Other"]
    task = backend.sessions.get((1, "image", "/data/local-files/?d=photos/coffee.jpg"), lambda: None)
    assert [(o.label, len(o.applied)) for o in task.objects] == [("Object", 2), ("Other", 1)]
    assert backend.sessions.encodes == 1  # one encoder pass for every click of the task


def test_no_prompts_no_predictions(client):
    body = predict_body([])
    assert client.post("/predict", json=body).json() == {"results": []}
    body["params"]["context"] = None
    assert client.post("/predict", json=body).json() == {"results": []}
    brush_only = {"id": "z", "from_name": "mask", "to_name": "image", "type": "brushlabels", "value": {"rle": []}}
    assert client.post("/predict", json=predict_body([brush_only])).json() == {"results": []}


def test_empty_mask_is_an_empty_result(tiny_model, document_root, monkeypatch):
    from fastapi.testclient import TestClient

    from clicksam.labelstudio.app import create_app
    from clicksam.labelstudio.sessions import TaskSession

    monkeypatch.setattr(TaskSession, "update", lambda self, group: (self._target(group), np.zeros(self.size, bool), 0.1))
    with TestClient(create_app(make_backend(tiny_model, document_root))) as client:
        response = client.post("/predict", json=predict_body([keypoint("a", 300, 200)]))
    assert response.json()["results"][0]["result"] == []


@pytest.mark.parametrize("body, status, message", [
    (predict_body([keypoint("a", 1, 1)], image="/data/local-files/?d=photos/broken.jpg"), 422, "photos/broken.jpg"),
    (predict_body([keypoint("a", 1, 1)], image="/data/local-files/?d=photos/none.jpg"), 422, "no file"),
    (predict_body([keypoint("a", 1, 1, label="Dog")]), 422, "not a label of the BrushLabels"),
    (predict_body([keypoint("n", 1, 1, label="Negative")]), 422, "positive keypoint or a rectangle first"),
    (predict_body([keypoint("a", 1, 1, size=(400, 600))]), 422, "shows the image as 400x600"),
    (predict_body([rectangle("r", (10, 10, 10.5, 40))]), 422, "region 'r': box"),
    ({**predict_body([keypoint("a", 1, 1)]), "tasks": [{"id": 1, "data": {}}]}, 422, "no data.image"),
    ({**predict_body([keypoint("a", 1, 1)]), "tasks": "x"}, 422, "list of task objects"),
    ({**predict_body([keypoint("a", 1, 1)]), "tasks": [{"id": 1}, {"id": 2}]}, 422, "one task"),
    ({**predict_body([keypoint("a", 1, 1)]), "label_config": "<View>"}, 422, "not valid XML"),
])
def test_bad_requests_are_clear_errors(client, body, status, message):
    response = client.post("/predict", json=body)
    assert response.status_code == status and response.json()["status"] == "ERROR"
    assert message in response.json()["error"]


def test_malformed_json_and_internal_errors(client, backend, monkeypatch):
    response = client.post("/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON object" in response.json()["error"]
    assert client.post("/setup", json=[1, 2]).status_code == 400

    def broken(*args, **kwargs):
        raise RuntimeError("the focsam stage has no trained weights")

    monkeypatch.setattr(backend.sessions, "get", broken)
    response = client.post("/predict", json=predict_body([keypoint("a", 300, 200)]))
    assert response.status_code == 500 and response.json() == {
        "status": "ERROR", "error": "RuntimeError: the focsam stage has no trained weights"}


def test_webhook_closes_the_task_session(client, backend):
    only_region(client.post("/predict", json=predict_body([keypoint("a", 300, 200)], task_id=5)))
    assert len(backend.sessions) == 1
    started = client.post("/webhook", json={"action": "TASK_CREATED", "task": {"id": 5}}).json()
    assert started["sessions_closed"] == 0 and len(backend.sessions) == 1
    saved = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "task": {"id": 5}, "annotation": {}})
    assert saved.status_code == 200 and saved.json()["sessions_closed"] == 1 and len(backend.sessions) == 0
    only_region(client.post("/predict", json=predict_body([keypoint("a", 300, 200)], task_id=6)))
    bulk = client.post("/webhook", json={"action": "ANNOTATIONS_CREATED", "task": [{"id": 6}], "annotation": [{}]})
    assert bulk.json()["sessions_closed"] == 1 and len(backend.sessions) == 0
    deleted = client.post("/webhook", json={"action": "TASKS_DELETED", "tasks": [{"id": 6}, {"id": 7}]})
    assert deleted.json() == {"status": "ok", "action": "TASKS_DELETED", "sessions_closed": 0}


def test_basic_auth(tiny_model, document_root):
    from fastapi.testclient import TestClient

    from clicksam.labelstudio.app import create_app

    app = create_app(make_backend(tiny_model, document_root), basic_auth=("ls", "s3cret"))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 401
        wrong = base64.b64encode(b"ls:nope").decode()
        assert client.get("/health", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
        right = base64.b64encode(b"ls:s3cret").decode()
        assert client.get("/health", headers={"Authorization": f"Basic {right}"}).status_code == 200
        assert client.get("/health", auth=("ls", "s3cret")).json()["status"] == "UP"
