"""Load test of the web annotator: simulated users clicking at once, on loopback only.

Starts ``clicksam serve`` (tiny model by default) on 127.0.0.1 in a subprocess, waits until every
image is encoded, then runs ``--users`` simulated annotators for ``--duration`` seconds. Each user
owns one object on one of the images and sends positive/negative clicks, some boxes and some
undos, one request at a time, as the page does. Reports errors and click latency percentiles
(round trip, and the server's own prompt time).

    python benchmarks/web_load.py --users 20 --duration 60 [--model tiny] [--out load.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HOST = "127.0.0.1"  # never anything else: this script floods the server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _write_images(folder: Path, count: int, width: int, height: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width]
    for index in range(count):
        image = np.full((height, width, 3), rng.integers(20, 90, 3), np.uint8)
        for _ in range(4):
            cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(10, min(width, height) // 3)
            image[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = rng.integers(100, 255, 3)
        Image.fromarray(image).save(folder / f"load_{index:02d}.png")


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    array = np.asarray(values)
    return {"n": int(array.size), "p50": round(float(np.percentile(array, 50)), 1),
            "p95": round(float(np.percentile(array, 95)), 1), "max": round(float(array.max()), 1),
            "mean": round(float(array.mean()), 1)}


async def _user(client: Any, index: int, image: str, size: tuple[int, int], deadline: float,
                records: list[dict[str, Any]]) -> None:
    rng = random.Random(index)
    width, height = size

    async def send(kind: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            response = await client.post(path, json=body)
            ok, status = response.status_code < 400, response.status_code
            data = response.json() if ok else None
            detail = None if ok else response.text[:200]
        except Exception as exc:  # a refused connection or a timeout is an error too
            ok, status, data, detail = False, 0, None, f"{type(exc).__name__}: {exc}"
        records.append({"kind": kind, "user": index, "ok": ok, "status": status, "detail": detail,
                        "rtt_ms": (time.perf_counter() - started) * 1000.0,
                        "server_ms": data.get("latency_ms") if data else None})
        return data

    created = await send("create", "/api/objects", {"image": image, "label": f"user{index}"})
    if created is None:
        return
    object_id, can_undo = created["id"], False
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.1 and can_undo:
            result = await send("undo", "/api/undo", {"image": image, "object": object_id})
        elif roll < 0.2:
            x0, y0 = rng.uniform(0, width / 2), rng.uniform(0, height / 2)
            result = await send("box", "/api/box", {"image": image, "object": object_id, "x0": x0, "y0": y0,
                                                    "x1": x0 + width / 3, "y1": y0 + height / 3})
        else:
            result = await send("click", "/api/click", {
                "image": image, "object": object_id, "x": rng.randrange(width), "y": rng.randrange(height),
                "positive": rng.random() < 0.7})
        if result is not None:
            can_undo = result["can_undo"]


async def _run_users(base: str, users: int, duration: float, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import httpx

    records: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=users + 4)
    async with httpx.AsyncClient(base_url=base, timeout=120.0, limits=limits) as client:
        sizes = {}
        for image in images:
            info = (await client.get("/api/annotation", params={"name": image["name"]})).json()
            sizes[image["name"]] = (info["width"], info["height"])
        deadline = time.monotonic() + duration
        await asyncio.gather(*(
            _user(client, i, images[i % len(images)]["name"], sizes[images[i % len(images)]["name"]], deadline, records)
            for i in range(users)))
    return records


def _wait_encoded(base: str, timeout: float) -> float:
    import httpx

    started = time.monotonic()
    names = [i["name"] for i in httpx.get(f"{base}/api/images").json()["images"]]
    for name in names:
        httpx.post(f"{base}/api/open", json={"image": name})
    while time.monotonic() - started < timeout:
        statuses = [i["status"] for i in httpx.get(f"{base}/api/images").json()["images"]]
        if "failed" in statuses:
            raise RuntimeError(f"an image failed to encode: {statuses}")
        if all(s == "ready" for s in statuses):
            return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"images not encoded within {timeout} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of clicking (default 30)")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--images", type=int, default=4, help="synthetic images to serve (default 4)")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    parser.add_argument("--decode-slots", type=int, default=4, help="passed to clicksam serve")
    parser.add_argument("--out", type=Path, default=None, help="write the summary JSON here")
    args = parser.parse_args(argv)
    if args.users < 1 or not 0 < args.duration <= 3600:
        parser.error("--users must be >= 1 and --duration in (0, 3600]")

    with tempfile.TemporaryDirectory(prefix="clicksam-load-") as tmp:
        folder = Path(tmp, "images")
        folder.mkdir()
        _write_images(folder, args.images, *args.size)
        port = _free_port()
        base = f"http://{HOST}:{port}"
        env = {**os.environ, "CLICKSAM_CACHE": str(Path(tmp, "cache"))}
        log = open(Path(tmp, "server.log"), "wb")  # a file, not a pipe: a full pipe would stall the server
        server = subprocess.Popen([sys.executable, "-m", "clicksam", "serve", "--model", args.model, "--images",
                                   str(folder), "--host", HOST, "--port", str(port), "--random-weights",
                                   "--decode-slots", str(args.decode_slots)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            import httpx

            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"server exited: {Path(tmp, 'server.log').read_text()[-2000:]}")
                try:
                    httpx.get(f"{base}/api/info", timeout=2)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("server did not start within 120 s") from None
                    time.sleep(0.3)
            encode_s = _wait_encoded(base, 600)
            images = httpx.get(f"{base}/api/images").json()["images"]
            started = time.monotonic()
            records = asyncio.run(_run_users(base, args.users, args.duration, images))
            wall = time.monotonic() - started
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()

    prompts = [r for r in records if r["kind"] in ("click", "box", "undo")]
    clicks = [r for r in records if r["kind"] == "click" and r["ok"]]
    errors = [r for r in records if not r["ok"]]
    summary = {
        "users": args.users, "decode_slots": args.decode_slots, "duration_s": args.duration,
        "wall_s": round(wall, 1), "model": args.model,
        "images": args.images, "image_size": list(args.size), "cpu_count": os.cpu_count(),
        "encode_all_s": round(encode_s, 1), "requests": len(records), "prompts": len(prompts),
        "prompts_per_s": round(len(prompts) / wall, 2), "errors": len(errors),
        "error_examples": sorted({f"{e['status']} {e['detail']}" for e in errors})[:5],
        "click_rtt_ms": _percentiles([r["rtt_ms"] for r in clicks]),
        "click_server_ms": _percentiles([r["server_ms"] for r in clicks if r["server_ms"] is not None]),
    }
    text = json.dumps(summary, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
