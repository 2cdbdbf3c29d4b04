"""Resumable runs: nothing lost or repeated after an exception or a SIGKILL in the middle."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clicksam.cli import main
from clicksam.eval.datasets import FolderDataset
from clicksam.eval.runner import ResultLog, RunSettings, prepare_run_dir, run_dataset
from clicksam.eval.segmenter import ErodedGtOracle

from .conftest import write_square_dataset

STABLE_KEYS = ("object_id", "ious", "clicks", "n_clicks", "image_id")


class Crash(Exception):
    pass


class CrashingOracle(ErodedGtOracle):
    """Raises when starting object number ``crash_at`` (0-based)."""

    def __init__(self, lookup, crash_at: int | None) -> None:
        super().__init__(lookup, (3, 2, 1))
        self.crash_at = crash_at
        self.started: list[str] = []

    def reset(self, object_id=None):
        if self.crash_at is not None and len(self.started) == self.crash_at:
            raise Crash(f"injected failure before {object_id}")
        self.started.append(object_id)
        super().reset(object_id)


def stable(records):
    return [{k: r[k] for k in STABLE_KEYS} for r in records]


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_resume_after_an_exception(tmp_path):
    images, masks = write_square_dataset(tmp_path / "data", count=7)
    ds = FolderDataset(images, masks, name="squares")
    by_id = {o.object_id: o for o in ds.objects}
    lookup = lambda oid: ds.decode_gt(by_id[oid])  # noqa: E731
    settings = RunSettings(max_clicks=5)

    reference = run_dataset(ds, CrashingOracle(lookup, None), tmp_path / "ref", settings, progress=False)

    run = tmp_path / "run"
    first = CrashingOracle(lookup, crash_at=4)
    prepare_run_dir(run, settings, first)
    with pytest.raises(Crash):
        run_dataset(ds, first, run, settings, progress=False)
    assert [r["object_id"] for r in lines_of(run / "squares.jsonl")] == first.started[:4]

    second = CrashingOracle(lookup, None)
    prepare_run_dir(run, settings, second)
    records = run_dataset(ds, second, run, settings, progress=False)
    assert second.started == [o.object_id for o in ds.objects[4:]]  # nothing recomputed
    on_disk = lines_of(run / "squares.jsonl")
    assert [r["object_id"] for r in on_disk] == [o.object_id for o in ds.objects]  # nothing lost or repeated
    assert stable(on_disk) == stable(records) == stable(reference)


def test_resume_after_sigkill_in_a_subprocess(tmp_path):
    images, masks = write_square_dataset(tmp_path / "data", count=10)
    out = tmp_path / "run"
    args = ["eval", "--images", str(images), "--masks", str(masks), "--name", "squares",
            "--oracle", "erode:2@0.03", "--max-clicks", "6", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "clicksam", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "squares.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if log.is_file() and len(log.read_bytes().splitlines()) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()!r}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done_before = [r["object_id"] for r in lines_of(log)]
    assert 3 <= len(done_before) < 10
    assert not (out / "summary.json").exists()

    assert main(args) == 0  # resume in this process
    ids = [r["object_id"] for r in lines_of(log)]
    assert ids[: len(done_before)] == done_before
    assert sorted(ids) == [f"obj{i:03d}" for i in range(10)] and len(set(ids)) == 10
    summary = json.loads((out / "summary.json").read_text())
    assert summary["datasets"]["squares"]["num_objects"] == 10 and summary["datasets"]["squares"]["complete"]


def test_truncated_tail_is_dropped_and_corrupt_middle_line_reported(tmp_path):
    log = ResultLog(tmp_path / "x.jsonl")
    log.append({"object_id": "a", "ious": [0.5]})
    log.append({"object_id": "b", "ious": [0.6]})
    with open(log.path, "ab") as handle:
        handle.write(b'{"object_id": "c", "ious": [0.')
    assert [r["object_id"] for r in log.read()] == ["a", "b"]
    assert log.path.read_bytes().endswith(b'[0.6]}\n')  # the partial line is gone from the file
    with open(log.path, "ab") as handle:
        handle.write(b'{"object_id": "c"}')  # complete record, newline missing
    assert [r["object_id"] for r in log.read()] == ["a", "b", "c"]
    log.append({"object_id": "d"})
    assert [r["object_id"] for r in log.read()] == ["a", "b", "c", "d"]
    log.path.write_bytes(b'{"object_id": "a"}\ngarbage\n{"object_id": "b"}\n')
    with pytest.raises(RuntimeError, match="line 2 is corrupt"):
        log.read()


def test_resume_refuses_other_settings_and_foreign_objects(tmp_path):
    images, masks = write_square_dataset(tmp_path / "data")
    ds = FolderDataset(images, masks, name="squares")
    oracle = ErodedGtOracle(lambda oid: ds.decode_gt(next(o for o in ds.objects if o.object_id == oid)), (1,))
    prepare_run_dir(tmp_path / "run", RunSettings(max_clicks=5), oracle)
    with pytest.raises(RuntimeError, match="max_clicks"):
        prepare_run_dir(tmp_path / "run", RunSettings(max_clicks=20), oracle)
    ResultLog(tmp_path / "run" / "squares.jsonl").append({"object_id": "elsewhere", "ious": [1.0]})
    with pytest.raises(RuntimeError, match="elsewhere"):
        run_dataset(ds, oracle, tmp_path / "run", RunSettings(max_clicks=5), progress=False)


def test_random_tie_breaks_are_reproducible_per_object(tmp_path):
    images, masks = write_square_dataset(tmp_path / "data")
    ds = FolderDataset(images, masks, name="squares")
    by_id = {o.object_id: o for o in ds.objects}
    oracle = ErodedGtOracle(lambda oid: ds.decode_gt(by_id[oid]), (3, 2, 1))
    settings = RunSettings(max_clicks=6, random_ties=True, seed=3)
    a = run_dataset(ds, oracle, tmp_path / "a", settings, progress=False)
    b = run_dataset(ds, oracle, tmp_path / "b", settings, progress=False)
    c = run_dataset(ds, oracle, tmp_path / "c", RunSettings(max_clicks=6), progress=False)
    assert stable(a) == stable(b)
    assert [r["clicks"] for r in a] != [r["clicks"] for r in c]  # the square's centre has 4 tied maxima


def test_one_set_image_per_image_shared_by_its_objects(tmp_path):
    import numpy as np
    from PIL import Image

    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationObject").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    names = ["im1", "im2"]
    for name in names:
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        indices = np.zeros((32, 32), np.uint8)
        indices[2:10, 2:10], indices[15:30, 15:30], indices[12, :] = 1, 2, 255
        pal = Image.fromarray(indices, mode="P")
        pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0, 0, 0] * 252 + [224, 224, 192])
        pal.save(root / "SegmentationObject" / f"{name}.png")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(names) + "\n")

    from clicksam.eval.datasets import load_dataset

    ds = load_dataset("PascalVOC", root)
    by_id = {o.object_id: o for o in ds.objects}

    class CountingOracle(ErodedGtOracle):
        images: list[str] = []

        def set_image(self, image, image_id):
            self.images.append(image_id)
            super().set_image(image, image_id)

    oracle = CountingOracle(lambda oid: ds.decode_gt(by_id[oid]), (1,))
    records = run_dataset(ds, oracle, tmp_path / "run", RunSettings(max_clicks=3), progress=False)
    assert [r["object_id"] for r in records] == ["im1#1", "im1#2", "im2#1", "im2#2"]
    assert oracle.images == ["im1", "im2"]
    assert [r["encode_seconds"] > 0 for r in records] == [True, False, True, False]
