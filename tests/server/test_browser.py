"""End to end in headless Chromium: the real server (tiny model) and the page.

Click an object and see the mask drawn, undo, redo, negative click, export, kill the server,
start it again, reload the page and find the annotations intact.
"""
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
from typing import Any, Iterator

import numpy as np
import pytest

from tests.server.conftest import write_images

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make browser)")


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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    images = tmp_path / "images"
    write_images(images, count=2, size=(160, 120))
    # the tiny test model is randomly initialised: fix its weights so both server runs agree
    import torch

    from clicksam import build_sam

    checkpoint = tmp_path / "tiny.pth"
    torch.save(build_sam("tiny").state_dict(), checkpoint)
    running = Server(images, tmp_path / "cache", checkpoint)
    running.start()
    yield running
    running.kill()


def _canvas(page: Any) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.locator("#view").screenshot())).convert("RGB")).astype(int)


def _changed(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels that differ clearly between two screenshots."""
    return float((np.abs(a - b).max(axis=2) > 40).mean())


def _wait_ready(page: Any) -> None:
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    page.wait_for_function("document.querySelector('#images li.current .dot').className.match(/ready|cached/)",
                           timeout=90000)
    page.wait_for_function("document.querySelector('#banner').hidden", timeout=10000)


def _wait_meta(page: Any, text: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            f"[...document.querySelectorAll('#objects .meta')].some(m => m.textContent.includes({json.dumps(text)}))"
            " && document.querySelector('#save-state').textContent === 'all changes saved'", timeout=60000)
    except PlaywrightTimeout:
        state = page.evaluate("[document.querySelector('#objects').textContent, "
                              "document.querySelector('#message').textContent]")
        raise AssertionError(f"page never showed {text!r}; objects and message: {state}") from None


def test_annotate_export_crash_restart(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from clicksam.io import rle_to_mask

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 700}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url + "/")
            _wait_ready(page)
            blank = _canvas(page)
            box = page.locator("#view").bounding_box()
            centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

            page.mouse.click(*centre)  # positive click on the disk
            _wait_meta(page, "1 click(s), 0 negative")
            assert "ms server" in page.locator("#latency").text_content()
            with_mask = _canvas(page)
            assert _changed(blank, with_mask) > 0.02, "no mask drawn after the click"

            page.click("#undo")
            _wait_meta(page, "0 click(s)")
            assert _changed(blank, _canvas(page)) < 0.002, "undo left a mask on the canvas"

            page.keyboard.press("Control+Shift+Z")  # redo from the keyboard
            _wait_meta(page, "1 click(s), 0 negative")
            assert _changed(with_mask, _canvas(page)) < 0.002

            page.mouse.click(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1, button="right")
            _wait_meta(page, "2 click(s), 1 negative")
            before_crash = _canvas(page)

            with page.expect_download() as download_info:
                page.click("#export-coco")
            coco = json.loads(Path(download_info.value.path()).read_text())
            assert len(coco["annotations"]) == 1 and coco["images"][0]["file_name"] == "img0.png"
            exported = rle_to_mask(coco["annotations"][0]["segmentation"])
            assert exported.shape == (120, 160) and exported.any()
            assert [c[2] for c in coco["annotations"][0]["clicksam"]["clicks"]] == [True, False]

            server.kill()
            server.start()
            page.reload()
            _wait_ready(page)
            _wait_meta(page, "2 click(s), 1 negative")
            assert "restored" in page.locator("#message").text_content()
            assert _changed(before_crash, _canvas(page)) < 0.002, "the restarted server shows another mask"

            page.keyboard.press("Control+z")  # the history survived the crash too
            _wait_meta(page, "1 click(s), 0 negative")
            assert _changed(with_mask, _canvas(page)) < 0.002
            assert errors == []
        finally:
            browser.close()
    saved = json.loads((server.images / ".clicksam/annotations/img0.png.json").read_text())
    assert [a["kind"] for a in saved["objects"][0]["actions"]] == ["click"] and len(saved["objects"][0]["redo"]) == 1
