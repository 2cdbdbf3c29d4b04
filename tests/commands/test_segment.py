"""``clicksam segment``: argument corner cases give one clear line, EXIF photos come out upright."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from clicksam.cli import main


def _segment(image, *extra):
    return ["segment", str(image), "--model", "tiny", *extra]


def test_negative_click_values_parse(images, tmp_path, capsys):
    """A negative coordinate is a value, not an option: the click is refused for being outside."""
    assert main(_segment(images / "a.png", "--click", "-10,-20", "-o", str(tmp_path / "m.png"))) == 2
    assert "outside the 64x48" in capsys.readouterr().err
    assert main(_segment(images / "a.png", "--box", "-5,-5,30,30", "-o", str(tmp_path / "m.png"))) == 0


def test_output_naming_a_folder_is_one_line(images, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(_segment(images / "a.png", "--click", "5,5", "-o", str(folder))) == 2
    err = capsys.readouterr().err
    assert f"-o {folder} is a folder" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["mask.jpg", "mask.JPEG", "mask"])
def test_output_must_be_png(images, tmp_path, capsys, name):
    assert main(_segment(images / "a.png", "--click", "5,5", "-o", str(tmp_path / name))) == 2
    assert "must end in .png" in capsys.readouterr().err
    assert not (tmp_path / name).exists()
    assert main(_segment(images / "a.png", "--click", "5,5", "-o", str(tmp_path / "m.PNG"),
                         "--overlay", str(tmp_path / name))) == 2
    assert "--overlay" in capsys.readouterr().err


def test_unreadable_images_are_one_line(tmp_path, capsys):
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a picture")
    assert main(_segment(fake, "--click", "1,1", "-o", str(tmp_path / "m.png"))) == 2
    err = capsys.readouterr().err
    assert f"cannot read image {fake}: it is not an image" in err and err.count("\n") == 1


def test_exif_rotated_photo_gives_an_upright_mask(tmp_path):
    """A phone photo stored 20x40 with orientation 6 is shown 40 high, 20 wide: so is its mask."""
    stored = np.zeros((20, 40, 3), np.uint8)
    photo = Image.fromarray(stored)
    exif = photo.getexif()
    exif[0x0112] = 6
    photo.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    assert main(_segment(tmp_path / "phone.jpg", "--click", "10,30", "-o", str(tmp_path / "m.png"))) == 0
    assert Image.open(tmp_path / "m.png").size == (20, 40)


def test_warnings_print_without_their_source_line(tmp_path, images):
    """A UserWarning from inside clicksam is one 'warning: ...' line, not file:line plus the code."""
    proc = subprocess.run([sys.executable, "-m", "clicksam", *_segment(images / "a.png", "--click", "5,5", "--method",
                                                                        "stable-sam", "-o", str(tmp_path / "m.png"))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "untrained" in line]
    assert lines and all(line.startswith("warning: ") for line in lines), proc.stderr
    assert "warnings.warn(" not in proc.stderr and ".py:" not in proc.stderr
