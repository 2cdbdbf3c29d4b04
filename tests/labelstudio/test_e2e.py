"""End to end against a real Label Studio (its PyPI package, SQLite, 127.0.0.1).

Label Studio lives in its own virtual environment (``make label-studio-venv`` builds ``.venv-ls``
from ``tests/labelstudio/requirements-ls.txt``; ``make test`` does it first). The test starts
Label Studio and ``clicksam label-studio`` as processes, creates a project with the shipped
labelling config through Label Studio's API, connects the backend, imports an uploaded image and
a local-files image from ``../shared/data``, asks Label Studio for interactive predictions, and
decodes the returned brushes with Label Studio's own converter to the masks clicksam's own
session gives for the same prompts.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

import clicksam
from clicksam.images import read_image
from clicksam.labelstudio.cli import config_text
from clicksam.labelstudio.rle import mask_to_rle, rle_to_mask

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LS_VENV = Path(os.environ.get("CLICKSAM_LS_VENV", REPO / ".venv-ls"))
TOKEN = "clicksam-e2e-legacy-token"
UPLOADED = "Berkeley/images/101085.jpg"   # 321×481
LOCAL = "GrabCut/data_GT/106024.jpg"

# Label Studio's own brush converter (label_studio_sdk.converter.brush; label_studio_converter.brush
# before the SDK absorbed it): decode our RLEs, and encode masks for our decoder.
CONVERTER = """
import json, sys
import numpy as np
try:
    from label_studio_sdk.converter import brush
except ImportError:
    from label_studio_converter import brush
job = json.load(sys.stdin)
decoded = [brush.decode_rle(item["rle"]).reshape(item["height"], item["width"], 4) for item in job["decode"]]
np.savez(job["out"], *decoded)
encoded = [brush.mask2rle(np.array(mask, dtype=np.uint8) * 255) for mask in job["encode"]]
print(json.dumps([[int(b) for b in rle] for rle in encoded]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"{url} did not answer within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def migrated_database(env: dict[str, str]) -> Path:
    """An empty Label Studio database with every migration applied, made once per environment
    (``label-studio version`` migrates and exits): a fresh server then starts in seconds, not minutes."""
    template = LS_VENV / "clicksam-e2e-template"
    database = template / "label_studio.sqlite3"
    if not database.is_file():
        building = template.with_name(template.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        subprocess.run([str(LS_VENV / "bin" / "label-studio"), "version", "--data-dir", str(building)],
                       env={**env, "LABEL_STUDIO_BASE_DATA_DIR": str(building)}, check=True, timeout=900,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        building.rename(template)
    return database


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory, shared_dir) -> Iterator[dict[str, Any]]:
    """A fresh Label Studio on 127.0.0.1 with a user whose legacy token is TOKEN."""
    if not (LS_VENV / "bin" / "label-studio").is_file():
        pytest.skip(f"Label Studio's environment {LS_VENV} is missing: run `make label-studio-venv`")
    data = tmp_path_factory.mktemp("label-studio")
    port = free_port()
    env = {**os.environ, "DJANGO_DB": "sqlite", "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(shared_dir / "data"),
           # a backend on this machine: Label Studio refuses loopback model and webhook URLs without these
           "ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false"}
    started = time.monotonic()
    shutil.copy(migrated_database(env), data / "label_studio.sqlite3")
    env["LABEL_STUDIO_BASE_DATA_DIR"] = str(data)
    url = f"http://127.0.0.1:{port}"
    command = [str(LS_VENV / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
               "--host", url, "--port", str(port), "--data-dir", str(data), "--username", "e2e@example.com",
               "--password", "e2e-password-1", "--user-token", TOKEN, "--enable-legacy-api-token"]
    log = data / "label-studio.log"
    process = start(command, env, log)
    try:
        wait_for(f"{url}/health", process, log, timeout_s=600)
        yield {"url": url, "log": log, "startup_s": time.monotonic() - started}
    finally:
        stop(process)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The tiny model's weights in a file, so the backend process and this test share them."""
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    torch.save(clicksam.build_sam("tiny").state_dict(), path)
    return path


def api(label_studio: dict[str, Any], method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    response = httpx.request(method, label_studio["url"] + path, headers={"Authorization": f"Token {TOKEN}"},
                             timeout=120, **kwargs)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:500]}"
    return response.json()


def converter(decode: list[dict[str, Any]], encode: list[np.ndarray], out: Path) -> tuple[list[np.ndarray], list]:
    """Label Studio's converter in its own environment: RGBA arrays of ``decode``, RLEs of ``encode``."""
    job = {"decode": decode, "encode": [m.tolist() for m in encode], "out": str(out)}
    run = subprocess.run([str(LS_VENV / "bin" / "python"), "-c", CONVERTER], input=json.dumps(job),
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    with np.load(out) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(decode))], json.loads(run.stdout)


def keypoint(region_id: str, x: int, y: int, size: tuple[int, int], positive: bool = True) -> dict[str, Any]:
    width, height = size
    return {"id": region_id, "from_name": "click", "to_name": "image", "type": "keypointlabels",
            "original_width": width, "original_height": height, "image_rotation": 0, "is_positive": positive,
            "value": {"x": (x + 0.5) / width * 100, "y": (y + 0.5) / height * 100, "width": 0.5,
                      "keypointlabels": ["Object"], "labels": ["Object"]}}


def rectangle(region_id: str, box: tuple[int, int, int, int], size: tuple[int, int]) -> dict[str, Any]:
    (x0, y0, x1, y1), (width, height) = box, size
    return {"id": region_id, "from_name": "box", "to_name": "image", "type": "rectanglelabels",
            "original_width": width, "original_height": height, "image_rotation": 0,
            "value": {"x": x0 / width * 100, "y": y0 / height * 100, "width": (x1 - x0) / width * 100,
                      "height": (y1 - y0) / height * 100, "rotation": 0, "rectanglelabels": ["Object"]}}


def test_label_studio_end_to_end(label_studio, tiny_checkpoint, shared_dir, tmp_path):
    import httpx

    timings: dict[str, Any] = {"label_studio_startup_s": label_studio["startup_s"]}
    project = api(label_studio, "POST", "/api/projects", json={"title": "clicksam e2e", "label_config": config_text()})
    with open(shared_dir / "data" / UPLOADED, "rb") as image_file:
        api(label_studio, "POST", f"/api/projects/{project['id']}/import?commit_to_project=true",
            files={"file": (Path(UPLOADED).name, image_file, "image/jpeg")})
    api(label_studio, "POST", f"/api/projects/{project['id']}/import",
        json=[{"image": f"/data/local-files/?d={LOCAL}"}, {"image": "/data/local-files/?d=README.md"}])
    tasks = api(label_studio, "GET", f"/api/tasks?project={project['id']}")["tasks"]
    uploaded, local, broken = sorted(tasks, key=lambda t: t["id"])
    assert uploaded["data"]["image"].startswith("/data/upload/")
    personal_token = api(label_studio, "POST", "/api/token/")["token"]

    # the backend downloads uploads with a personal access token and reads local files directly
    port = free_port()
    backend_log = tmp_path / "backend.log"
    command = [sys.executable, "-m", "clicksam.cli", "label-studio", "--model", "tiny", "--checkpoint",
               str(tiny_checkpoint), "--port", str(port), "--label-studio-url", label_studio["url"],
               "--label-studio-api-key", personal_token, "--document-root", str(shared_dir / "data")]
    backend = start(command, {**os.environ, "CLICKSAM_CACHE": str(tmp_path / "cache")}, backend_log)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", backend, backend_log, timeout_s=120)
        model = api(label_studio, "POST", "/api/ml", json={"url": f"http://127.0.0.1:{port}", "project": project["id"],
                                                          "title": "clicksam", "is_interactive": True})
        assert model["state"] == "CO", model  # Label Studio checked /health and /setup
        assert model["model_version"] == "clicksam-tiny-sam"

        def interactive(task: dict[str, Any], regions: list[dict[str, Any]]) -> dict[str, Any]:
            start_s = time.monotonic()
            answer = api(label_studio, "POST", f"/api/ml/{model['id']}/interactive-annotating",
                         json={"task": task["id"], "context": {"result": regions}})
            timings.setdefault(f"task{task['id']}_requests_s", []).append(round(time.monotonic() - start_s, 3))
            return answer

        first_image = read_image(shared_dir / "data" / UPLOADED)
        size = (first_image.shape[1], first_image.shape[0])
        click = keypoint("k1", 160, 240, size)
        first = interactive(uploaded, [click])
        second = interactive(uploaded, [click, keypoint("k2", 60, 40, size, positive=False)])  # Alt-click
        local_image = read_image(shared_dir / "data" / LOCAL)
        local_size = (local_image.shape[1], local_image.shape[0])
        box = (40, 30, local_size[0] - 60, local_size[1] - 20)
        third = interactive(local, [rectangle("r1", box, local_size)])
        failed = api(label_studio, "POST", f"/api/ml/{model['id']}/interactive-annotating",
                     json={"task": broken["id"], "context": {"result": [keypoint("k9", 5, 5, (100, 100))]}})
        assert failed.get("errors") and "422" in failed["errors"][0]  # an error answer, not a crash
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["status"] == "UP"

        # save the suggestion as an annotation: Label Studio's webhook closes the task's session
        region = first["data"]["result"][0]
        api(label_studio, "POST", f"/api/tasks/{uploaded['id']}/annotations", json={"result": [region]})
        deadline = time.monotonic() + 30
        while "ANNOTATION_CREATED: closed 1 task session" not in backend_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "ANNOTATION_CREATED: closed 1 task session" in backend_log.read_text(), backend_log.read_text()[-2000:]
        assert "README.md" in backend_log.read_text()  # the bad image's reason is in the backend's log
    finally:
        stop(backend)

    # clicksam's own session on the same images, prompts and weights
    model_here = clicksam.build_sam("tiny", checkpoint=tiny_checkpoint)
    expected = []
    for image, prompts in ((first_image, [(160, 240, True)]), (first_image, [(160, 240, True), (60, 40, False)]),
                           (local_image, [box])):
        predictor = clicksam.SamPredictor(model_here)
        predictor.set_image(image)
        session = clicksam.InteractiveSession(predictor)
        for prompt in prompts:
            session.add_box(*prompt) if len(prompt) == 4 else session.add_click(*prompt)
        expected.append(session.mask)
    answers = [first, second, third]
    brushes = []
    for answer in answers:
        (result,) = answer["data"]["result"]
        assert result["type"] == "brushlabels" and result["value"]["brushlabels"] == ["Object"]
        brushes.append({"rle": result["value"]["rle"], "width": result["original_width"],
                        "height": result["original_height"]})
    rng = np.random.default_rng(0)
    samples = [rng.random((37, 53)) > 0.5, np.ones((300, 301), bool), np.zeros((5, 7), bool)]
    decoded, their_rles = converter(brushes + [{"rle": mask_to_rle(m), "width": m.shape[1], "height": m.shape[0]}
                                               for m in samples], samples, tmp_path / "decoded.npz")
    for rgba, brush in zip(decoded, brushes + [{"rle": mask_to_rle(m)} for m in samples]):
        mask = rle_to_mask(brush["rle"], rgba.shape[1], rgba.shape[0])  # the format, bit for bit
        assert (rgba == mask[..., None] * 255).all()
    for rgba, mask in zip(decoded[len(brushes):], samples):
        assert np.array_equal(rgba[..., 3] > 0, mask)
    for rgba, mask in zip(decoded, expected):
        # another process, the same weights and thread count: equal in practice; SPEC §9's bar allows
        # a pixel flipped by float round-off at the threshold
        theirs = rgba[..., 3] > 0
        assert theirs.shape == mask.shape and (theirs & mask).sum() >= 0.999 * (theirs | mask).sum()
    for rle, mask in zip(their_rles, samples):
        assert np.array_equal(rle_to_mask(rle, mask.shape[1], mask.shape[0]), mask)
    print("label studio e2e timings:", json.dumps(timings))
