"""Helpers of the end-to-end browser tests: the real server in a subprocess, the images, and reading
the canvas (screenshots) and the server's state (HTTP) from a test."""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZE = (160, 120)  # width, height of the test images
RED, BLUE = (37, 23), (57, 43)  # marker pixels of every image: they tell where the page shows each pixel
MARKER_COLOURS = {RED: (255, 0, 0), BLUE: (0, 0, 255)}


def marked_image(width: int, height: int) -> np.ndarray:
    """A bright disk on a dark background, with the two marker pixels."""
    yy, xx = np.mgrid[:height, :width]
    image = np.full((height, width, 3), 30, np.uint8)
    image[(xx - width // 2) ** 2 + (yy - height // 2) ** 2 <= 30 ** 2] = (240, 200, 40)
    for (x, y), colour in MARKER_COLOURS.items():
        image[y, x] = colour
    return image


def write_images(folder: Path, count: int) -> list[str]:
    """``count`` PNG images of :func:`marked_image` (``SIZE``); returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        names.append(f"img{index}.png")
        Image.fromarray(marked_image(*SIZE)).save(folder / names[-1])
    return names


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``clicksam serve --model tiny`` in a subprocess."""

    def __init__(self, images: Path, cache: Path, checkpoint: Path) -> None:
        self.images, self.cache, self.checkpoint, self.port = images, cache, checkpoint, _free_port()
        self.log = cache.parent / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "CLICKSAM_CACHE": str(self.cache), "OMP_NUM_THREADS": "2"}
        command = [sys.executable, "-m", "clicksam", "serve", "--model", "tiny", "--images", str(self.images),
                   "--checkpoint", str(self.checkpoint), "--port", str(self.port)]
        with open(self.log, "ab") as log:  # a file, not a pipe: a full pipe would stall the server
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/info", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("server did not start within 90 s")

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def objects(self, image: str) -> list[dict[str, Any]]:
        return self.get(f"/api/annotation?name={image}")["objects"]

    def saved(self, image: str) -> dict[str, Any]:
        return json.loads((self.images / ".clicksam/annotations" / f"{image}.json").read_text())


def canvas(page: Any) -> np.ndarray:
    """The canvas as an H×W×3 int array (screen pixels, CSS pixel = device pixel here), after the
    page has drawn its pending frame."""
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    return np.asarray(Image.open(io.BytesIO(page.locator("#view").screenshot())).convert("RGB")).astype(int)


def changed(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels that differ clearly between two screenshots."""
    return float((np.abs(a - b).max(axis=2) > 40).mean())


def _block(shot: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero((np.abs(shot - np.asarray(colour)).max(axis=2) < 25))
    if not rows.size:
        raise AssertionError(f"marker {colour} is not on the canvas")
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def transform(shot: np.ndarray) -> tuple[float, float, float]:
    """(x0, y0, scale): image point (x, y) is shown at canvas pixel (x0 + x * scale, y0 + y * scale),
    measured from where the marker pixels appear (their blocks are one image pixel each; their
    centres are image points (37.5, 23.5) and (57.5, 43.5)). Accurate to about a screen pixel."""
    red, blue = _block(shot, MARKER_COLOURS[RED]), _block(shot, MARKER_COLOURS[BLUE])
    red_centre = ((red[0] + red[2]) / 2, (red[1] + red[3]) / 2)
    blue_centre = ((blue[0] + blue[2]) / 2, (blue[1] + blue[3]) / 2)
    scale = ((blue_centre[0] - red_centre[0]) / (BLUE[0] - RED[0])
             + (blue_centre[1] - red_centre[1]) / (BLUE[1] - RED[1])) / 2
    width = red[2] - red[0]
    assert abs(width - scale) <= 1.5, f"a marker pixel is {width} screen pixels wide at scale {scale:.2f}"
    return red_centre[0] - (RED[0] + 0.5) * scale, red_centre[1] - (RED[1] + 0.5) * scale, scale


def on_screen(page: Any, where: tuple[float, float, float], x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image point (x, y) for the mouse."""
    box = page.locator("#view").bounding_box()
    x0, y0, scale = where
    return box["x"] + x0 + x * scale, box["y"] + y0 + y * scale


def wait_ready(page: Any) -> None:
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    page.wait_for_function("document.querySelector('#images li.current .dot').className.match(/ready|cached/)",
                           timeout=90000)
    page.wait_for_function("document.querySelector('#banner').hidden", timeout=10000)


def wait_for(page: Any, script: str, what: str) -> None:
    """Wait until ``script`` (a JS expression) holds and every change is saved."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"({script}) && document.querySelector('#save-state').textContent === "
                               "'all changes saved'", timeout=60000)
    except PlaywrightTimeout:
        state = page.evaluate("[document.querySelector('#selected-meta').textContent, "
                              "document.querySelector('#message').textContent]")
        raise AssertionError(f"page never showed {what}; selected object and message: {state}") from None


def wait_meta(page: Any, text: str) -> None:
    """Wait until the selected object's summary contains ``text``."""
    wait_for(page, f"document.querySelector('#selected-meta').textContent.includes({json.dumps(text)})", repr(text))


def disk_rule(points: list[list[float]], radius: float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The brush rule written independently: distance of each pixel centre to the polyline.

    Returns (covered, ambiguous): ambiguous pixels lie within 1e-6 of the radius (either answer is right).
    """
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    centre = np.stack([xx + 0.5, yy + 0.5], axis=-1).astype(float)
    path = np.asarray(points, float)
    pairs = list(zip(path, path[1:])) or [(path[0], path[0])]
    best = np.full(shape, np.inf)
    for a, b in pairs:
        v = b - a
        t = np.zeros(shape) if not v.any() else np.clip(((centre - a) @ v) / (v @ v), 0, 1)
        nearest = a + t[..., None] * v
        best = np.minimum(best, np.linalg.norm(centre - nearest, axis=-1))
    return best <= radius, np.abs(best - radius) < 1e-6
