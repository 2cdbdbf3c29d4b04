"""Resolving Label Studio image references: local files, uploads, URLs, with clear errors."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from clicksam.images import read_image
from clicksam.labelstudio.images import ImageError, ImageResolver, LabelStudioConnection, default_document_root

PAT = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"  # shaped like a refresh JWT


class FakeLabelStudio(BaseHTTPRequestHandler):
    """Serves /data/upload/ files to 'Token legacy' or a Bearer access token from /api/token/refresh/."""

    files: dict[str, bytes] = {}
    seen: list[tuple[str, str]] = []
    access = "access-1"
    redirect_to = ""

    def log_message(self, *args: Any) -> None:  # keep the test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/token/refresh/" and body.get("refresh") == PAT:
            self._send(200, json.dumps({"access": self.access}).encode())
        else:
            self._send(401, b'{"detail": "bad refresh token"}')

    def do_GET(self) -> None:  # noqa: N802
        auth = self.headers.get("Authorization", "")
        self.seen.append((self.path, auth))
        if self.path == "/data/moved.png":
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        if self.path.startswith("/data/") and auth not in ("Token legacy", f"Bearer {self.access}"):
            self._send(401, b'{"detail": "Authentication credentials were not provided."}')
        elif self.path in self.files:
            self._send(200, self.files[self.path], "image/png")
        else:
            self._send(404, b'{"detail": "not found"}')


@pytest.fixture
def fake_ls(document_root: Path) -> Iterator[str]:
    FakeLabelStudio.files = {"/data/upload/3/square.png": (document_root / "square.png").read_bytes(),
                             "/public/square.png": (document_root / "square.png").read_bytes(),
                             "/data/upload/3/broken.jpg": b"not an image"}
    FakeLabelStudio.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLabelStudio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_local_files_from_the_document_root(document_root):
    images = ImageResolver(document_root=document_root)
    image = images.read("/data/local-files/?d=photos/coffee.jpg")
    assert image.shape == (400, 600, 3) and np.array_equal(image, read_image(document_root / "photos/coffee.jpg"))
    with pytest.raises(ImageError, match="leaves"):
        images.read("/data/local-files/?d=../../etc/passwd")
    with pytest.raises(ImageError, match="needs \\?d="):
        images.read("/data/local-files/?x=1")
    with pytest.raises(ImageError, match="photos/broken.jpg: "):  # the reader's own message follows
        images.read("/data/local-files/?d=photos/broken.jpg")


def test_uploads_from_the_media_folder(tmp_path, document_root):
    (tmp_path / "media/upload/3").mkdir(parents=True)
    (tmp_path / "media/upload/3/square.png").write_bytes((document_root / "square.png").read_bytes())
    images = ImageResolver(media_root=tmp_path / "media")
    assert images.read("/data/upload/3/square.png").shape == (50, 70, 3)
    assert images.read("upload/3/square.png").shape == (50, 70, 3)  # older Label Studio: no /data prefix


def test_uploads_downloaded_with_the_setup_token(fake_ls):
    images = ImageResolver()
    with pytest.raises(ImageError, match="does not know Label Studio's address"):
        images.read("/data/upload/3/square.png", "3")
    images.connect("3", fake_ls, "legacy")
    assert images.read("/data/upload/3/square.png", "3").shape == (50, 70, 3)
    assert FakeLabelStudio.seen[-1] == ("/data/upload/3/square.png", "Token legacy")
    with pytest.raises(ImageError, match="broken.jpg: .*http://127.0.0.1:\\d+/data/upload/3/broken.jpg") as error:
        images.read("/data/upload/3/broken.jpg", "3")  # bytes that are no image at all
    assert "clicksam-ls-" not in str(error.value)  # the URL, not the temporary file, is named
    with pytest.raises(ImageError, match="HTTP 404"):
        images.read("/data/upload/3/missing.png", "3")


def test_personal_access_token_is_exchanged(fake_ls):
    images = ImageResolver(connection=LabelStudioConnection(fake_ls + "/", PAT))
    assert images.read(fake_ls + "/data/upload/3/square.png").shape == (50, 70, 3)
    assert FakeLabelStudio.seen[-1][1] == "Bearer access-1"
    FakeLabelStudio.access = "access-2"  # the old access token expired: one renewal, then success
    try:
        assert images.read("/data/upload/3/square.png").shape == (50, 70, 3)
        assert [a for _, a in FakeLabelStudio.seen[-2:]] == ["Bearer access-1", "Bearer access-2"]
    finally:
        FakeLabelStudio.access = "access-1"
    wrong = ImageResolver(connection=LabelStudioConnection(fake_ls, PAT + "x"))
    with pytest.raises(ImageError, match="did not accept the personal access token"):
        wrong.read("/data/upload/3/square.png")


def test_missing_key_and_plain_urls(fake_ls):
    images = ImageResolver(connection=LabelStudioConnection(fake_ls))
    with pytest.raises(ImageError, match="HTTP 401.*--label-studio-api-key"):
        images.read("/data/upload/3/square.png")
    assert ImageResolver().read(fake_ls + "/public/square.png").shape == (50, 70, 3)


def test_key_is_not_sent_to_other_hosts(fake_ls):
    other = fake_ls.replace("127.0.0.1", "localhost")
    images = ImageResolver(connection=LabelStudioConnection(fake_ls, "legacy"))
    images.read(other + "/public/square.png")
    assert FakeLabelStudio.seen[-1] == ("/public/square.png", "")
    FakeLabelStudio.redirect_to = other + "/public/square.png"  # Label Studio redirecting elsewhere
    images.read(fake_ls + "/data/moved.png")
    assert FakeLabelStudio.seen[-2:] == [("/data/moved.png", "Token legacy"), ("/public/square.png", "")]


def test_refused_references(document_root, monkeypatch):
    images = ImageResolver(document_root=document_root)
    for reference, message in [("s3://bucket/a.jpg", "cloud storage"), ("photos/coffee.jpg", "not an http"),
                               ("", "must be a URL"), ("http://127.0.0.1:9/x.png", "downloading")]:
        with pytest.raises(ImageError, match=message):
            images.read(reference)
    with pytest.raises(ValueError, match="http:// or https://"):
        LabelStudioConnection("127.0.0.1:8080")
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(document_root))
    assert default_document_root() == document_root
