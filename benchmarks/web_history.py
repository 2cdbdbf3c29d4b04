"""The next click on a long-history object after a server restart: stored step results against a replay.

One object gets ``--clicks`` clicks (150) through the annotator's HTTP API (in process, TestClient) on
the ``tiny`` model. Then, ``--repeats`` times each, alternating: the server is restarted (a new app on
the same annotation folder and embedding cache) and the next click is timed, end to end (request to
answer, the session's rebuild included), in two ways:

- ``stored``: the object's steps have their stored results (this change): one decode;
- ``replay``: the same annotation file without them, as files were before this change: the server
  replays the object's clicks first (decodes only: results are now computed at the image size on
  demand);
- ``replay_before``: the restart path of the annotator before this change, in process: a fresh
  session replays every click with ``add_click``, each returning its image-size mask, then the click.

After each timed click the click is undone, so every repeat starts from the same 150 steps. The
undo and a method switch right after a restart are timed too. Writes one JSON file per run:

    python benchmarks/web_history.py [--clicks 150] [--repeats 3] [--out benchmarks/results/web_history_<time>.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

IMAGE = "coffee.jpg"


def _app(folder: Path, cache: Path, model: Any) -> Any:
    from clicksam.cache import EmbeddingCache
    from clicksam.server.app import create_app
    from clicksam.server.backend import SamSessionFactory
    from clicksam.server.images import ImageFolder
    from clicksam.server.service import AnnotatorService
    from clicksam.server.store import AnnotationStore

    store = AnnotationStore(folder / ".clicksam" / "annotations", images=folder)
    return create_app(AnnotatorService(ImageFolder(folder), store, SamSessionFactory(model, EmbeddingCache(cache)),
                                       encode_timeout=300))


def _post(client: Any, path: str, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
    response = client.request(method, path, json={"image": IMAGE, **body})
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text}")
    return response.json()


def _strip_stored_results(annotation_file: Path) -> None:
    """The annotation as it was written before stored step results existed."""
    data = json.loads(annotation_file.read_text())
    for record in data["objects"]:
        for step in record["actions"] + record["redo"]:
            step.pop("state", None)
    annotation_file.write_text(json.dumps(data))


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _replay_before(path: Path, cache: Path, model: Any, prompts: list[dict[str, Any]], click: dict[str, Any]) -> float:
    """The restart path before this change: a new session replays every click (each computing its
    image-size mask), then takes the next click. The embedding comes from the disk cache, as there."""
    from clicksam import InteractiveSession, SamPredictor
    from clicksam.cache import EmbeddingCache
    from clicksam.images import read_image

    predictor = SamPredictor(model, cache=EmbeddingCache(cache))
    predictor.set_image(read_image(path))
    started = time.perf_counter()
    session = InteractiveSession(predictor, method="sam")
    for step in prompts:
        session.add_click(step["x"], step["y"], positive=step["positive"])
    session.add_click(click["x"], click["y"])
    return time.perf_counter() - started


def run(clicks: int, repeats: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from clicksam import build_sam

    model = build_sam("tiny", methods=["stable-sam"]).eval()  # the test config (random weights); stable-sam: the switch
    work = Path(tempfile.mkdtemp(prefix="clicksam_web_history_"))
    folder, cache = work / "images", work / "emb"
    folder.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "src/clicksam/examples" / IMAGE, folder / IMAGE)
    rng = np.random.default_rng(0)
    with TestClient(_app(folder, cache, model)) as client:
        shown = client.get("/api/annotation", params={"name": IMAGE}).json()
        width, height = shown["width"], shown["height"]
        obj = _post(client, "/api/objects", {"method": "sam"})["id"]
        started = time.perf_counter()
        for i in range(clicks):
            _post(client, "/api/click", {"object": obj, "x": float(rng.integers(0, width)),
                                         "y": float(rng.integers(0, height)), "positive": bool(i % 3 != 2)})
        build_s = time.perf_counter() - started
    annotation_file = folder / ".clicksam/annotations" / f"{IMAGE}.json"
    stored_copy = work / "stored.json"
    shutil.copy(annotation_file, stored_copy)
    click = {"object": obj, "x": width / 2, "y": height / 2}
    times: dict[str, list[float]] = {"stored": [], "replay": [], "replay_before": [], "undo_after_restart": [],
                                     "switch_after_restart": []}
    prompts = [step for step in json.loads(stored_copy.read_text())["objects"][0]["actions"]]
    for _ in range(repeats):
        for kind in ("stored", "replay"):
            shutil.copy(stored_copy, annotation_file)
            if kind == "replay":
                _strip_stored_results(annotation_file)
            with TestClient(_app(folder, cache, model)) as client:  # a restart
                client.post("/api/open", json={"image": IMAGE})
                times[kind].append(_timed(lambda: _post(client, "/api/click", click)))
        times["replay_before"].append(_replay_before(folder / IMAGE, cache, model, prompts, click))
        shutil.copy(stored_copy, annotation_file)
        with TestClient(_app(folder, cache, model)) as client:
            client.post("/api/open", json={"image": IMAGE})
            times["undo_after_restart"].append(_timed(lambda: _post(client, "/api/undo", {"object": obj})))
        shutil.copy(stored_copy, annotation_file)
        with TestClient(_app(folder, cache, model)) as client:
            client.post("/api/open", json={"image": IMAGE})
            times["switch_after_restart"].append(
                _timed(lambda: _post(client, "/api/objects", {"object": obj, "method": "stable-sam"}, "PATCH")))
    shutil.rmtree(work, ignore_errors=True)
    median = {kind: statistics.median(values) for kind, values in times.items()}
    return {
        "benchmark": "web_history", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": "tiny (random weights)", "image": IMAGE, "image_size": [width, height], "clicks": clicks,
        "repeats": repeats, "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "seconds_to_make_the_clicks": round(build_s, 2),
        "next_click_after_restart_s": {kind: [round(v, 4) for v in times[kind]]
                                       for kind in ("stored", "replay", "replay_before")},
        "median_s": {kind: round(value, 4) for kind, value in median.items()},
        "replay_over_stored": round(median["replay"] / median["stored"], 1),
        "replay_before_over_stored": round(median["replay_before"] / median["stored"], 1),
        "stored_under_1s": median["stored"] < 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    result = run(args.clicks, args.repeats)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    out = args.out or Path(__file__).resolve().parent / "results" / f"web_history_{stamp}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
