"""Latency of the Label Studio backend, from request to response, against clicksam's own
``InteractiveSession`` on the same image, model and clicks, in the same run.

    python benchmarks/label_studio_latency.py --model vit_b --repeats 3 --tag quiet

Each repeat opens a new task on a fresh backend (served by uvicorn on 127.0.0.1, asked over HTTP
with the JSON Label Studio sends): the first request carries the encoder pass, the later ones send
every keypoint so far, as Label Studio does. A second task on the same image then shows the first
click with the embedding already cached. The baseline is the session itself: ``set_image`` plus
``add_click`` per click, run in a worker thread as the backend's requests are. Reported: medians over repeats, and the ratios backend / session
(what the protocol adds: JSON, brush RLE, HTTP). One JSON file per run in benchmarks/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clicksam.commands.demo import EXAMPLES  # noqa: E402
from tests.labelstudio.conftest import keypoint, make_backend, predict_body  # noqa: E402

EXAMPLE = "coffee.jpg"


class Server:
    """The backend app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join()


def backend_run(model: Any, method: str, clicks: list[list[int]], size: tuple[int, int], task: int,
                untrained: bool) -> dict[str, Any]:
    """Seconds of each request of one task, then of a first click on a second task (same image)."""
    import httpx

    from clicksam.labelstudio.app import create_app

    backend = make_backend(model, EXAMPLES, method=method, allow_untrained=untrained)
    image = f"/data/local-files/?d={EXAMPLE}"
    times, sizes = [], []
    with Server(create_app(backend)) as url, httpx.Client(timeout=600) as client:
        regions = []
        for i, (x, y, label) in enumerate(clicks):
            regions.append(keypoint(f"k{i}", x, y, size, positive=bool(label)))
            start = time.perf_counter()
            response = client.post(f"{url}/predict", json=predict_body(regions, task_id=task, image=image))
            times.append(time.perf_counter() - start)
            response.raise_for_status()
            sizes.append(len(response.content))
        start = time.perf_counter()
        client.post(f"{url}/predict", json=predict_body(regions[:1], task_id=task + 1, image=image)).raise_for_status()
        cached_first = time.perf_counter() - start
    return {"requests_s": times, "cached_first_s": cached_first, "response_bytes": sizes,
            "encoder_passes": backend.sessions.encodes}


def session_run(model: Any, method: str, clicks: list[list[int]], untrained: bool) -> dict[str, Any]:
    """Seconds of set_image and of each add_click through InteractiveSession."""
    import clicksam
    from clicksam.images import read_image

    image = read_image(EXAMPLES / EXAMPLE)
    predictor = clicksam.SamPredictor(model)
    start = time.perf_counter()
    predictor.set_image(image)
    encode = time.perf_counter() - start
    session = clicksam.InteractiveSession(predictor, method=method, allow_untrained=untrained)
    times = []
    for x, y, label in clicks:
        start = time.perf_counter()
        session.add_click(x, y, positive=bool(label))
        times.append(time.perf_counter() - start)
    return {"encode_s": encode, "clicks_s": times}


def in_thread(fn: Any) -> Any:
    """``fn()`` in a fresh thread, as the backend runs each request in a worker thread: the OpenMP
    pools of the main thread and of other threads behave differently on a loaded machine (a 2-thread
    decoder step measured 2-3 s in the main thread and 0.3 s in a worker thread under load 14)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def summarise(backend_runs: list[dict], session_runs: list[dict]) -> dict[str, Any]:
    median = statistics.median
    first_backend = median(r["requests_s"][0] for r in backend_runs)
    first_session = median(r["encode_s"] + r["clicks_s"][0] for r in session_runs)
    later_backend = median(t for r in backend_runs for t in r["requests_s"][1:])
    later_session = median(t for r in session_runs for t in r["clicks_s"][1:])
    cached_backend = median(r["cached_first_s"] for r in backend_runs)
    first_click_session = median(r["clicks_s"][0] for r in session_runs)
    return {
        "first_click_s": {"backend": first_backend, "session": first_session, "ratio": first_backend / first_session},
        "later_clicks_s": {"backend": later_backend, "session": later_session, "ratio": later_backend / later_session,
                           "added_ms": (later_backend - later_session) * 1000},
        "first_click_embedding_cached_s": {"backend": cached_backend, "session_click_only": first_click_session,
                                           "ratio": cached_backend / first_click_session},
        "session_encode_s": median(r["encode_s"] for r in session_runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_b", help="registry name (random weights unless --checkpoint)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--method", default="sam")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--tag", default="", help="added to the result file's name")
    parser.add_argument("--out", type=Path, default=None, help="result file (default benchmarks/results/"
                                                               "label_studio_latency_<model>_<time>[_tag].json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import clicksam
    from clicksam.methods import parse_method

    torch.manual_seed(0)
    untrained = args.checkpoint is None  # random weights: a speed check, so untrained stages run on purpose
    model = clicksam.build_sam(args.model, checkpoint=args.checkpoint, methods=parse_method(args.method),
                               random_weights=untrained)
    spec = json.loads((EXAMPLES / "clicks.json").read_text())[EXAMPLE]
    clicks, size = spec["clicks"], (600, 400)
    backend_runs, session_runs = [], []
    for repeat in range(args.repeats):  # alternate the order so that both see the same machine load
        order = [lambda: backend_runs.append(backend_run(model, args.method, clicks, size, 10 * repeat + 1, untrained)),
                 lambda: session_runs.append(in_thread(lambda: session_run(model, args.method, clicks, untrained)))]
        for run in order if repeat % 2 == 0 else order[::-1]:
            run()
        print(f"repeat {repeat + 1}/{args.repeats}: backend {[round(t, 3) for t in backend_runs[-1]['requests_s']]} s, "
              f"session encode {session_runs[-1]['encode_s']:.3f} s + {[round(t, 3) for t in session_runs[-1]['clicks_s']]} s",
              flush=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    result = {"model": args.model, "weights": args.checkpoint or "random", "method": args.method,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu": platform.machine(),
              "load_average": os.getloadavg(), "image": f"clicksam/examples/{EXAMPLE}", "clicks": clicks, "time": stamp,
              "summary": summarise(backend_runs, session_runs), "backend_runs": backend_runs,
              "session_runs": session_runs}
    out = args.out or ROOT / "benchmarks/results" / (
        f"label_studio_latency_{args.model}_{stamp}" + (f"_{args.tag}" if args.tag else "") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
