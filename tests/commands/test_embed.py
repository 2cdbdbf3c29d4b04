"""``clicksam embed``: bad images are skipped with a reason, the rest is embedded, the exit code says so."""
from __future__ import annotations

import numpy as np
from PIL import Image

from clicksam.cli import main


def test_bad_images_are_skipped_and_the_rest_embedded(images, tmp_path, capsys):
    (images / "fake.jpg").write_text("hello")
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(images / "cut.jpg")
    (images / "cut.jpg").write_bytes((images / "cut.jpg").read_bytes()[:300])
    assert main(["embed", str(images), "--model", "tiny", "--out", str(tmp_path / "emb")]) == 1
    printed = capsys.readouterr()
    assert f"skipped {images / 'fake.jpg'}: " in printed.err and "not an image" in printed.err
    assert f"skipped {images / 'cut.jpg'}: " in printed.err and "truncated" in printed.err
    assert "2 images skipped" in printed.err and "Traceback" not in printed.err
    assert "4 images: 2 encoded, 0 already" in printed.out
    assert len(list((tmp_path / "emb").rglob("*.safetensors"))) == 2
