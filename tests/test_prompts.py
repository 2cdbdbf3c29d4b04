"""One rule for boxes wherever they come from: the library, the session, the CLI and the web API."""
from __future__ import annotations

import pytest

from clicksam.cli import main
from clicksam.prompts import MIN_BOX_SIZE, check_box

TOO_SMALL = "at least 1 pixel wide and high"


@pytest.mark.parametrize("box", [(10, 10, 10, 30), (10, 10, 30, 10), (10, 10, 10.5, 30), (5, 5, 5, 5)])
def test_a_box_under_one_pixel_is_refused_by_the_library(box):
    with pytest.raises(ValueError, match=TOO_SMALL):
        check_box(box, (60, 80))


def test_a_one_pixel_box_is_accepted():
    assert MIN_BOX_SIZE == 1.0
    assert check_box((10, 10, 11, 11), (60, 80)).tolist() == [10, 10, 11, 11]


def test_session_and_cli_refuse_it_with_the_same_message(tiny_predictor, tmp_path, capsys):
    from PIL import Image

    from clicksam import InteractiveSession

    with pytest.raises(ValueError, match=TOO_SMALL):
        InteractiveSession(tiny_predictor).add_box(20, 20, 20, 90)
    image = tmp_path / "a.png"
    Image.new("RGB", (80, 60)).save(image)
    assert main(["segment", str(image), "--model", "tiny", "--box", "20,20,20,50", "-o", str(tmp_path / "m.png")]) == 2
    assert TOO_SMALL in capsys.readouterr().err


def test_web_api_refuses_it_with_the_same_message(tmp_path):
    from fastapi.testclient import TestClient

    from tests.server.conftest import make_app, write_images

    write_images(tmp_path / "images")
    with TestClient(make_app(tmp_path / "images")) as client:
        obj = client.post("/api/objects", json={"image": "img0.png"}).json()
        body = {"image": "img0.png", "object": obj["id"], "x0": 20, "y0": 20, "x1": 20, "y1": 50}
        answer = client.post("/api/box", json=body)
        assert answer.status_code == 422 and TOO_SMALL in answer.json()["detail"]
        flipped = client.post("/api/box", json={**body, "x0": 40, "x1": 10})  # drawn right to left: fine
        assert flipped.status_code == 200 and flipped.json()["box"] == [10.0, 20.0, 40.0, 50.0]
