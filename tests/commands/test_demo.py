"""``clicksam demo`` from an installed wheel: its photos ship inside the package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from clicksam.commands.demo import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_photos_are_package_data():
    import clicksam

    assert EXAMPLES.parent == Path(clicksam.__file__).resolve().parent
    script = (EXAMPLES / "clicks.json").read_text()
    for name in ("coffee.jpg", "rocket.jpg", "astronaut.jpg", "chelsea.jpg"):
        assert (EXAMPLES / name).is_file() and name in script


@pytest.mark.slow
def test_demo_runs_from_a_built_wheel(tmp_path):
    """Build the wheel (from a copy: the build leaves nothing in the checkout), unpack it away from the
    checkout, and run the demo from it."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("clicksam-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"clicksam/examples/clicks.json", "clicksam/examples/coffee.jpg"} <= names
        archive.extractall(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    where = subprocess.run([sys.executable, "-c", "import clicksam; print(clicksam.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.startswith(str(tmp_path / "site")), where.stdout + where.stderr  # not the checkout
    demo = subprocess.run([sys.executable, "-m", "clicksam", "demo", "--model", "tiny", "--out", str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / "out" / "gallery.png").is_file() and "| coffee.jpg |" in demo.stdout
