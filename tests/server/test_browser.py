"""End to end in headless Chromium: the real server (tiny model) and the page.

Zoomed clicks, boxes and brush strokes land on the pixels under the mouse and the masks are drawn pixel
for pixel; hide, lock and solo; undo of a delete and of a reset; the review status and its filter;
a list of 110 objects that scrolls by itself; and a kill -9 of the server that loses nothing.
Each test works on its own image of one shared server.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from PIL import Image

from clicksam.io import rle_to_mask, runs_to_mask
from tests.server.browser import (BLUE, CHROMIUM, CHROMIUM_ARGS, RED, SIZE, Server, canvas, changed, disk_rule,
                                  marked_image, on_screen, transform, wait_for, wait_meta, wait_ready, write_images)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make browser)")
SHAPE = (SIZE[1], SIZE[0])
BIG = (2600, 1800)  # width, height: a display copy of 2048 and full-resolution tiles


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("browser")
    write_images(root / "images", count=5)
    (root / "images" / "classes.txt").write_text("cup\nplate\n")
    (root / "images" / "x-bad.jpg").write_text("not a photo\n")  # a text file named .jpg
    Image.fromarray(marked_image(*BIG)).save(root / "images" / "x-big.png")  # wider than the display copy
    Image.fromarray(marked_image(*SIZE)).save(root / "images" / "x-good.png")
    # the tiny test model is randomly initialised: fix its weights so both server runs agree
    import torch

    from clicksam import build_sam

    torch.save(build_sam("tiny").state_dict(), root / "tiny.pth")
    running = Server(root / "images", root / "cache", root / "tiny.pth")
    running.start()
    yield running
    running.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 700}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    conflicts: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: conflicts.append(r.url) if r.status == 409 else None)
    yield page
    context.close()
    assert errors == [] and conflicts == []


def _open(page: Any, server: Server, image: str) -> None:
    page.goto(f"{server.url}/#image={image}")
    wait_ready(page)


def _mask(obj: dict[str, Any]) -> np.ndarray:
    return np.zeros(SHAPE, bool) if obj["mask"] is None else runs_to_mask(obj["mask"])


def _drag(page: Any, where: tuple[float, float, float], start: tuple[float, float], end: tuple[float, float],
          button: str = "left") -> None:
    page.mouse.move(*on_screen(page, where, *start))
    page.mouse.down(button=button)
    page.mouse.move(*on_screen(page, where, *end), steps=12)
    page.mouse.up(button=button)


def _colour_at(page: Any, where: tuple[float, float, float], x: float, y: float) -> np.ndarray:
    box = page.locator("#view").bounding_box()
    sx, sy = on_screen(page, where, x, y)
    return canvas(page)[int(sy - box["y"]), int(sx - box["x"])]


def _class_colour(server: Server, name: str) -> np.ndarray:
    colour = next(c["colour"] for c in server.get("/api/classes")["classes"] if c["name"] == name)
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])


def _check_stroke(server: Server, image: str, before: np.ndarray, start: tuple[float, float],
                  end: tuple[float, float], scale: float) -> np.ndarray:
    """The saved stroke starts and ends under the mouse and changed exactly the pixels it covers."""
    obj = server.saved(image)["objects"][0]
    stroke = obj["actions"][-1]
    assert stroke["kind"] == "stroke"
    first, last = np.array(stroke["points"][0]), np.array(stroke["points"][-1])
    assert np.abs(first - start).max() <= 2 / scale and np.abs(last - end).max() <= 2 / scale
    covered, ambiguous = disk_rule(stroke["points"], stroke["radius"], SHAPE)
    expected = before | covered if stroke["mode"] == "paint" else before & ~covered
    after = rle_to_mask(obj["mask"])
    assert not ((after != expected) & ~ambiguous).any(), "the stroke changed other pixels than it covers"
    assert (after != before).sum() > 20
    return after


def test_zoomed_clicks_boxes_and_strokes_land_on_their_pixels(page: Any, server: Server) -> None:
    _open(page, server, "img0.png")
    page.locator("#opacity").fill("0")  # the raw image: the markers show where each pixel is drawn
    page.keyboard.press("o")
    page.uncheck("#show-prompts")
    fit = transform(canvas(page))
    cursor = on_screen(page, fit, 45.0, 30.0)
    page.mouse.move(*cursor)
    page.mouse.wheel(0, -400)
    zoomed = transform(canvas(page))
    assert zoomed[2] > 2 * fit[2]
    box = page.locator("#view").bounding_box()
    under = ((cursor[0] - box["x"] - zoomed[0]) / zoomed[2], (cursor[1] - box["y"] - zoomed[1]) / zoomed[2])
    # within what the screen pixels of the fitted view can tell (2 of them); zooming about another point
    # would move the image point under the cursor by several image pixels
    assert np.abs(np.subtract(under, (45.0, 30.0))).max() < 2 / fit[2], "the wheel did not zoom at the cursor"
    for fx, fy in ((0.5, 0.5), (0.1, 0.9)):  # the centre and a corner of the red marker pixel
        page.mouse.click(*on_screen(page, zoomed, RED[0] + fx, RED[1] + fy))
    wait_meta(page, "2 click(s), 0 negative")

    page.keyboard.down("Space")  # pan with space + drag, then with the middle button
    _drag(page, zoomed, (50, 35), (50 + 60 / zoomed[2], 35 + 40 / zoomed[2]))
    page.keyboard.up("Space")
    panned = transform(canvas(page))
    assert abs(panned[0] - zoomed[0] - 60) <= 1.5 and abs(panned[1] - zoomed[1] - 40) <= 1.5
    _drag(page, panned, (50, 35), (50 - 30 / panned[2], 35 - 50 / panned[2]), button="middle")
    view = transform(canvas(page))
    assert abs(view[0] - panned[0] + 30) <= 1.5 and abs(view[1] - panned[1] + 50) <= 1.5
    page.mouse.click(*on_screen(page, view, BLUE[0] + 1.5, BLUE[1] + 0.5), button="right")
    wait_meta(page, "3 click(s), 1 negative")
    assert server.objects("img0.png")[0]["clicks"] == [[37, 23, True], [37, 23, True], [58, 43, False]]
    _drag(page, view, (RED[0] + 0.5, RED[1] + 0.5), (BLUE[0] + 0.5, BLUE[1] + 0.5))  # a box, corner pixels included
    wait_meta(page, "1 negative, box")
    assert server.objects("img0.png")[0]["box"] == [37.0, 23.0, 57.0, 43.0]

    page.keyboard.press("b")
    page.locator("#radius").fill("2.5")
    before = _mask(server.objects("img0.png")[0])
    _drag(page, view, (40.3, 30.6), (52.7, 34.2))
    wait_meta(page, "1 stroke(s)")
    painted = _check_stroke(server, "img0.png", before, (40.3, 30.6), (52.7, 34.2), view[2])

    page.locator("#opacity").fill("100")  # opaque: every drawn pixel shows the mask or the image exactly
    page.mouse.move(0, 0)  # no brush cursor on the canvas
    page.wait_for_function("document.querySelector('#opacity-value').textContent === '100%'")
    shot, box = canvas(page), page.locator("#view").bounding_box()
    image = np.asarray(Image.open(server.images / "img0.png").convert("RGB")).astype(int)
    colour, wrong = _class_colour(server, "cup"), 0
    for y in range(SHAPE[0]):
        for x in range(SHAPE[1]):
            sx, sy = view[0] + (x + 0.5) * view[2], view[1] + (y + 0.5) * view[2]
            if 2 <= sx < box["width"] - 2 and 2 <= sy < box["height"] - 2:
                expected = colour if painted[y, x] else image[y, x]
                wrong += int(np.abs(shot[int(sy), int(sx)] - expected).max() > 3)
    assert wrong == 0, f"{wrong} image pixels are drawn with another mask state than the server's"

    page.keyboard.press("e")
    _drag(page, view, (44.2, 31.0), (48.9, 33.5))
    wait_meta(page, "2 stroke(s)")
    _check_stroke(server, "img0.png", painted, (44.2, 31.0), (48.9, 33.5), view[2])
    page.keyboard.press("Control+z")
    wait_meta(page, "1 stroke(s)")
    assert np.array_equal(_mask(server.objects("img0.png")[0]), painted)


def test_hide_lock_solo_and_undo_of_delete_and_reset(page: Any, server: Server) -> None:
    _open(page, server, "img1.png")
    view = transform(canvas(page))
    a_at, b_at = (30.5, 90.5), (130.5, 15.5)
    blank_a, blank_b = _colour_at(page, view, *a_at), _colour_at(page, view, *b_at)
    page.locator("#opacity").fill("100")
    page.keyboard.press("b")
    page.locator("#radius").fill("4")
    page.keyboard.press("1")  # class 1 (cup) for the new object
    _drag(page, view, (20, 90), (40, 90))  # no object yet: the stroke makes one
    wait_meta(page, "1 stroke(s)")
    page.keyboard.press("n")
    wait_for(page, "document.querySelectorAll('#objects li').length === 2", "a second object")
    page.keyboard.press("2")  # class 2 (plate)
    wait_for(page, "document.querySelector('#selected-title').textContent.includes('plate')", "class plate")
    _drag(page, view, (120, 15), (140, 15))
    wait_meta(page, "1 stroke(s)")
    page.mouse.move(0, 0)
    cup, plate = _class_colour(server, "cup"), _class_colour(server, "plate")
    a, b = (obj["id"] for obj in server.objects("img1.png"))

    def shows(a_colour: np.ndarray, b_colour: np.ndarray) -> None:
        assert np.abs(_colour_at(page, view, *a_at) - a_colour).max() <= 3
        assert np.abs(_colour_at(page, view, *b_at) - b_colour).max() <= 3

    def tint(colour: np.ndarray, under: np.ndarray) -> np.ndarray:  # an object that is not the selected one
        return (colour * 170 + under * 85) / 255

    def row_has(object_id: int, state: str) -> None:
        wait_for(page, f"document.querySelector(\"#objects li[data-id='{object_id}']\").className.includes('{state}')",
                 state)

    shows(tint(cup, blank_a), plate)  # b is selected
    page.click(f"#objects li[data-id='{a}'] .number")
    page.keyboard.press("h")
    row_has(a, "invisible")
    shows(blank_a, tint(plate, blank_b))
    page.keyboard.press("h")
    page.click(f"#objects li[data-id='{b}'] .number")
    page.keyboard.press("s")
    row_has(a, "invisible")
    shows(blank_a, plate)
    page.keyboard.press("s")
    wait_for(page, "!document.querySelector('#objects li.invisible')", "every object shown")
    shows(tint(cup, blank_a), plate)

    page.click(f"#objects li[data-id='{a}'] .number")
    page.keyboard.press("l")
    row_has(a, "locked")
    a_mask = server.objects("img1.png")[0]["mask"]
    _drag(page, view, (20, 80), (40, 80))
    wait_for(page, "document.querySelector('#message').textContent.includes('locked')", "the lock message")
    assert server.objects("img1.png")[0]["mask"] == a_mask

    b_mask = server.objects("img1.png")[1]["mask"]
    page.click(f"#objects li[data-id='{b}'] .number")
    page.keyboard.press("Delete")
    wait_for(page, "document.querySelectorAll('#objects li').length === 1", "the delete")
    shows(cup, blank_b)
    page.keyboard.press("Control+z")
    wait_for(page, "document.querySelectorAll('#objects li').length === 2", "the undo of the delete")
    shows(tint(cup, blank_a), plate)
    assert server.objects("img1.png")[1]["mask"] == b_mask

    page.click(f"#objects li[data-id='{a}'] .number")
    page.keyboard.press("l")
    wait_for(page, "!document.querySelector('#objects li.locked')", "the unlock")
    page.click("#reset")
    wait_meta(page, "· 0 px")
    shows(blank_a, tint(plate, blank_b))
    page.keyboard.press("Control+z")
    wait_meta(page, "1 stroke(s)")
    shows(cup, tint(plate, blank_b))
    assert server.objects("img1.png")[0]["mask"] == a_mask


def test_review_filter_and_a_long_object_list(page: Any, server: Server) -> None:
    _open(page, server, "img2.png")
    page.keyboard.press("Enter")  # done, and on to the next image to do
    wait_for(page, "document.querySelector('#image-name').textContent === 'img3.png'", "the next image to do")
    assert page.locator("#images li[data-name='img2.png'] .badge").text_content() == "done"
    assert page.locator("#review-filter [data-filter='done']").text_content() == "done 1"
    page.click("#review-filter [data-filter='done']")
    assert page.locator("#images li").evaluate_all("items => items.map(i => i.dataset.name)") == ["img2.png"]
    page.click("#review-filter [data-filter='all']")
    assert page.locator("#images li").count() == len(server.get("/api/images")["images"])
    assert server.get("/api/images")["reviews"]["done"] == 1

    for _ in range(110):
        server.post("/api/objects", {"image": "img3.png"})
    page.reload()
    wait_ready(page)
    wait_for(page, "document.querySelector('#object-count').textContent === '(110)'", "110 objects")
    sizes = page.evaluate("""() => {
        const list = document.querySelector('#objects'), side = document.querySelector('#side-panel');
        return [list.scrollHeight, list.clientHeight, side.scrollHeight, side.clientHeight];
    }""")
    assert sizes[0] > sizes[1] + 1000 and sizes[2] <= sizes[3] + 1, sizes  # only the list scrolls
    for control in ("#undo", "#redo", "#delete", "#opacity", "#export-coco", "#new-object"):
        area = page.locator(control).bounding_box()
        assert area is not None and area["y"] >= 0 and area["y"] + area["height"] <= 700, control
    for _ in range(40):
        page.keyboard.press("Tab")  # the selection walks the list, which follows it
    visible = page.evaluate("""() => {
        const list = document.querySelector('#objects').getBoundingClientRect();
        const row = document.querySelector('#objects li.selected').getBoundingClientRect();
        return [row.top >= list.top - 1 && row.bottom <= list.bottom + 1,
                document.querySelector('#objects li.selected').dataset.id];
    }""")
    assert visible == [True, "40"]


def test_everything_survives_a_kill(page: Any, server: Server, tmp_path: Path) -> None:
    _open(page, server, "img4.png")
    blank = canvas(page)
    view = transform(blank)
    box = page.locator("#view").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # positive click on the disk
    wait_meta(page, "1 click(s), 0 negative")
    assert "ms server" in page.locator("#latency").text_content()
    with_mask = canvas(page)
    assert changed(blank, with_mask) > 0.02, "no mask drawn after the click"
    page.click("#undo")
    wait_meta(page, "0 click(s)")
    assert changed(blank, canvas(page)) < 0.002, "undo left a mask on the canvas"
    page.keyboard.press("Control+Shift+Z")  # redo from the keyboard
    wait_meta(page, "1 click(s), 0 negative")
    assert changed(with_mask, canvas(page)) < 0.002
    page.keyboard.press("b")
    _drag(page, view, (10, 100), (30, 105))
    wait_meta(page, "1 stroke(s)")
    page.keyboard.press("2")
    page.keyboard.press("n")
    wait_for(page, "document.querySelectorAll('#objects li').length === 2", "a second object")
    page.keyboard.press("Delete")
    wait_for(page, "document.querySelectorAll('#objects li').length === 1", "the delete")
    page.keyboard.press("l")
    wait_for(page, "document.querySelector('#objects li.locked')", "the lock")
    page.select_option("#review", "needs_review")
    wait_for(page, "document.querySelector(\"#images li[data-name='img4.png']\").dataset.review === 'needs_review'",
             "the review status")
    with page.expect_download() as download_info:
        page.click("#export-coco")
    coco = json.loads(Path(download_info.value.path()).read_text())
    assert [c["name"] for c in coco["categories"]] == ["cup", "plate"]
    ours = [a for a in coco["annotations"] if coco["images"][a["image_id"] - 1]["file_name"] == "img4.png"]
    assert [a["category_id"] for a in ours] == [2] and ours[0]["clicksam"]["strokes"] == 1
    page.mouse.move(0, 0)
    before_crash = canvas(page)

    server.kill()
    server.start()
    page.reload()
    wait_ready(page)
    wait_meta(page, "1 click(s), 0 negative, 1 stroke(s)")
    assert "restored" in page.locator("#message").text_content()
    assert changed(before_crash, canvas(page)) < 0.002, "the restarted server shows another mask"
    assert page.locator("#review").input_value() == "needs_review"
    assert page.locator("#objects li").get_attribute("class").split() == ["selected", "locked"]
    assert page.locator("#objects li select").input_value() == "2"
    page.keyboard.press("Control+z")  # the history survived too: the deleted object comes back
    wait_for(page, "document.querySelectorAll('#objects li').length === 2", "the undo of the delete")
    saved = server.saved("img4.png")
    assert saved["review"] == "needs_review" and saved["objects"][0]["locked"] and saved["future"] == [[2, "delete"]]


def test_a_failed_image_load_clears_the_canvas_and_the_objects(page: Any, server: Server) -> None:
    """Opening an unreadable file after an image with objects leaves nothing of that image on screen
    (issue #16: a Delete went to an object of the other image), says why and marks the file failed."""
    for radius in (3, 5):
        made = server.post("/api/objects", {"image": "x-good.png"})
        server.post("/api/stroke", {"image": "x-good.png", "object": made["id"], "mode": "paint", "radius": radius,
                                    "points": [[20, 20 * radius], [60, 20 * radius]]})
    _open(page, server, "x-good.png")
    wait_for(page, "document.querySelectorAll('#objects li').length === 2", "the objects of x-good.png")
    page.click("#images li[data-name='x-bad.jpg']")
    wait_for(page, "document.querySelector('#message').textContent.includes('not an image file')", "the reason")
    assert page.locator("#objects li").count() == 0 and page.locator("#selected-panel").is_hidden()
    assert page.locator("#image-name").text_content() == "x-bad.jpg"
    wait_for(page, "document.querySelector(\"#images li[data-name='x-bad.jpg'] .dot\").classList.contains('failed')",
             "the failed mark")
    inside = canvas(page)[2:-2, 2:-2]  # the stage's border lines aside
    assert (inside == inside[0, 0]).all(), "the canvas still shows something"
    before = server.objects("x-good.png")
    page.keyboard.press("Delete")  # nothing is selected: nothing is deleted anywhere
    page.mouse.click(*on_screen(page, (0.0, 0.0, 1.0), 50, 50))
    assert server.objects("x-good.png") == before
    page.wait_for_timeout(2500)  # a poll of the listing keeps the reason on screen
    assert "not an image file" in page.locator("#message").text_content()
    page.click("#images li[data-name='x-good.png']")
    wait_for(page, "document.querySelectorAll('#objects li').length === 2", "x-good.png's objects again")


def test_a_large_image_comes_as_a_display_copy_and_full_resolution_tiles(page: Any, server: Server) -> None:
    sent: dict[str, list[Any]] = {"image": [], "tile": []}
    page.on("response", lambda r: sent["image" if "/api/image?" in r.url else "tile"].append(r)
            if "/api/image?" in r.url or "/api/tile?" in r.url else None)
    _open(page, server, "x-big.png")
    copy = sent["image"][0]
    assert copy.headers["content-type"] == "image/jpeg" and len(copy.body()) < 1_000_000
    assert sent["tile"] == []  # fitted, the display copy is as fine as the screen
    box = page.locator("#view").bounding_box()
    fit = min(box["width"] / BIG[0], box["height"] / BIG[1])
    fitted = ((box["width"] - BIG[0] * fit) / 2, (box["height"] - BIG[1] * fit) / 2, fit)
    page.mouse.move(*on_screen(page, fitted, RED[0] + 0.5, RED[1] + 0.5))  # the red marker stays where it is
    with page.expect_response(lambda r: "/api/tile?" in r.url and "level=0" in r.url):
        page.mouse.wheel(0, -1500)  # about 20x: past the display copy's resolution
    for _ in range(50):  # the marker pixels are drawn from the full-resolution tile, one crisp square each
        try:
            view = transform(canvas(page))
            break
        except AssertionError:
            page.wait_for_timeout(100)
    else:
        raise AssertionError("the zoomed view never showed the full-resolution marker pixels")
    assert view[2] > 3 and all(r.headers["content-type"] == "image/png" for r in sent["tile"])
    page.mouse.click(*on_screen(page, view, RED[0] + 0.5, RED[1] + 0.5))  # clicks land on full-resolution pixels
    wait_meta(page, "1 click(s), 0 negative")
    assert server.objects("x-big.png")[0]["clicks"] == [[RED[0], RED[1], True]]
