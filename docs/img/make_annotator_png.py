"""Make docs/img/annotator.png: the annotator at work on the example photos (needs Debian's chromium).

The objects are painted with the brush, as a user would (the tiny test model is untrained, so its
own click masks would be noise): strokes through the API, then the page zoomed on the spoon with
the brush cursor on it. Run: ``.venv/bin/python docs/img/make_annotator_png.py``.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.server.browser import CHROMIUM, CHROMIUM_ARGS, Server  # noqa: E402

CUP_ROWS = [(40, 205, 375), (70, 180, 405), (100, 175, 408), (130, 178, 405), (160, 185, 398),
            (190, 195, 390), (220, 210, 370), (250, 235, 345), (275, 260, 320)]  # y, left, right edge


def paint(server: Server, image: str, label: str, strokes: list[tuple[float, list[list[float]]]]) -> int:
    obj = server.post("/api/objects", {"image": image, "label": label})["id"]
    for radius, points in strokes:
        server.post("/api/stroke", {"image": image, "object": obj, "mode": "paint", "radius": radius, "points": points})
    return obj


def main() -> None:
    import math

    import torch
    from playwright.sync_api import sync_playwright

    from clicksam import build_sam
    from clicksam.commands.demo import EXAMPLES

    work = Path(tempfile.mkdtemp())
    images = work / "images"
    images.mkdir()
    for name in ("coffee", "chelsea", "astronaut", "rocket"):
        shutil.copy(EXAMPLES / f"{name}.jpg", images / f"{name}.jpg")
    (images / "classes.txt").write_text("cup\nsaucer\nspoon\ncat\nperson\n")
    torch.manual_seed(0)
    torch.save(build_sam("tiny").state_dict(), work / "tiny.pth")
    server = Server(images, work / "cache", work / "tiny.pth")
    server.start()
    try:
        ellipse = [[278 + 168 * math.cos(t / 20 * math.pi), 232 + 124 * math.sin(t / 20 * math.pi)] for t in range(41)]
        paint(server, "coffee.jpg", "saucer", [(34, ellipse)])
        paint(server, "coffee.jpg", "cup", [(20, [[left + 20, y], [right - 20, y]]) for y, left, right in CUP_ROWS]
              + [(18, [[215, 250], [235, 290]])])
        paint(server, "coffee.jpg", "spoon", [(18, [[352, y], [378, y]]) for y in range(258, 312, 9)]
              + [(7, [[410, 75], [381, 238]])])
        server.post("/api/review", {"image": "chelsea.jpg", "review": "done"})
        server.post("/api/review", {"image": "astronaut.jpg", "review": "needs_review"})
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 800})
            page.goto(f"{server.url}/#image=coffee.jpg")
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_function("document.querySelector('#banner').hidden", timeout=120000)
            page.keyboard.press("b")
            box = page.locator("#view").bounding_box()
            scale = min(box["width"] / 600, box["height"] / 400)
            left, top = box["x"] + (box["width"] - 600 * scale) / 2, box["y"] + (box["height"] - 400 * scale) / 2
            page.mouse.move(left + 340 * scale, top + 230 * scale)
            page.mouse.wheel(0, -350)
            page.mouse.move(left + 340 * scale + 40, top + 230 * scale + 90)
            page.wait_for_timeout(300)
            page.screenshot(path=str(ROOT / "docs" / "img" / "annotator.png"))
            browser.close()
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
