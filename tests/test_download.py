"""Checkpoint download: size + sha256 checks, atomic rename, resume, offline message.
A local HTTP server on 127.0.0.1 stands in for the weights host; nothing leaves the machine."""
from __future__ import annotations

import hashlib
import http.server
import threading
from dataclasses import replace

import pytest

from clicksam import registry
from clicksam.download import download_checkpoint, download_file, find_checkpoint
from clicksam.registry import WeightsInfo

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    ranges: list = []

    def do_GET(self):  # noqa: N802
        start = 0
        header = self.headers.get("Range")
        _RangeHandler.ranges.append(header)
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _RangeHandler.ranges = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _info(url: str, sha: str | None = None) -> WeightsInfo:
    return WeightsInfo("fake_sam.pth", len(PAYLOAD), sha or hashlib.sha256(PAYLOAD).hexdigest(), url=f"{url}/fake_sam.pth")


def test_download_checks_and_renames(server, tmp_path):
    target = tmp_path / "fake_sam.pth"
    assert download_file(_info(server), target, progress=False) == target
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "fake_sam.pth.part").exists()


def test_interrupted_download_resumes_from_the_partial_file(server, tmp_path):
    part = tmp_path / "fake_sam.pth.part"
    part.write_bytes(PAYLOAD[:300_000])
    download_file(_info(server), tmp_path / "fake_sam.pth", progress=False)
    assert _RangeHandler.ranges == ["bytes=300000-"]
    assert (tmp_path / "fake_sam.pth").read_bytes() == PAYLOAD


def test_wrong_sha256_deletes_the_partial_file(server, tmp_path):
    with pytest.raises(RuntimeError, match="sha256 .* does not match the expected 0000"):
        download_file(_info(server, sha="0" * 64), tmp_path / "fake_sam.pth", progress=False)
    assert not list(tmp_path.iterdir())


def test_offline_says_which_file_to_put_where(tmp_path, monkeypatch):
    cfg = registry.get_config("vit_b")
    offline = replace(cfg, weights=replace(cfg.weights, url="http://127.0.0.1:9/sam_vit_b_01ec64.pth"))
    monkeypatch.setitem(registry._REGISTRY.configs, "vit_b", offline)
    monkeypatch.setenv("CLICKSAM_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match=rf"could not download .*put it at {tmp_path}/sam_vit_b_01ec64.pth"):
        download_checkpoint("vit_b", progress=False)
    with pytest.raises(RuntimeError, match=r"clicksam download vit_b.*\(375,042,383 bytes\)"):
        find_checkpoint("vit_b")


def test_cached_file_is_used_and_wrong_size_is_replaced(server, tmp_path, monkeypatch):
    cfg = registry.get_config("vit_b")
    fake = replace(cfg, weights=replace(_info(server), filename="sam_vit_b_01ec64.pth"))
    monkeypatch.setitem(registry._REGISTRY.configs, "vit_b", fake)
    target = tmp_path / "sam_vit_b_01ec64.pth"
    target.write_bytes(b"short")
    assert download_checkpoint("vit_b", cache_dir=tmp_path, progress=False) == target
    assert target.read_bytes() == PAYLOAD
    _RangeHandler.ranges = []
    download_checkpoint("vit_b", cache_dir=tmp_path, progress=False)
    assert _RangeHandler.ranges == []  # already there: no request


def test_test_models_have_no_weights():
    with pytest.raises(ValueError, match="'tiny' has no official weights"):
        download_checkpoint("tiny")
