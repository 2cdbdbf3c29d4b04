"""Resumable evaluation runs.

A run folder holds ``run.json`` (the configuration) and one ``<DATASET>.jsonl`` per dataset with
one JSON line per finished object, appended and fsync'ed as soon as the object is done. A restarted
run reads the lines back, skips the objects already there and continues; a line cut short by a
kill is dropped (the object is simply run again). Reports are written by :mod:`clicksam.eval.report`.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from clicksam.io.atomic import atomic_write_json

from .datasets import EvalDataset, EvalObject
from .loop import evaluate_clicks
from .prompts import PROMPT_TYPES, evaluate_prompts
from .segmenter import Segmenter

__all__ = ["ResultLog", "RunSettings", "prepare_run_dir", "run_dataset", "read_run_config", "RUN_CONFIG"]

RUN_CONFIG = "run.json"
# settings that must match when a run is resumed (the numbers would otherwise mix two protocols)
_RESUME_KEYS = ("protocol", "max_clicks", "seed", "random_ties", "box_noise", "num_prompts",
                "prompt_types", "with_boundary", "segmenter")


class ResultLog:
    """Append-only JSONL of per-object results, safe against being killed at any moment.

    Args:
        path: the ``.jsonl`` file (created on the first append).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """All complete records; a final line cut short by a kill is removed from the file.

        Raises:
            RuntimeError: a corrupt line that is not the last one, or a record without ``object_id``.
        """
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        records: list[dict[str, Any]] = []
        good_end = 0
        lines = data.split(b"\n")
        for number, line in enumerate(lines, start=1):
            is_last = number == len(lines)
            if not line.strip():
                good_end += len(line) + (0 if is_last else 1)
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "object_id" not in record:
                    raise ValueError("not an object record")
            except ValueError as exc:
                if is_last:  # the tail of an interrupted append: drop it
                    break
                raise RuntimeError(f"{self.path} line {number} is corrupt ({exc}); "
                                   "delete that line to resume, the object will be run again") from exc
            if is_last:  # a complete JSON value without its newline: keep it, add the newline
                records.append(record)
                good_end = len(data)
                self._terminate_last_line()
                break
            records.append(record)
            good_end += len(line) + 1
        if good_end < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
                handle.flush()
                os.fsync(handle.fileno())
        return records

    def _terminate_last_line(self) -> None:
        with open(self.path, "ab") as handle:
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line and fsync it before returning."""
        line = json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())


@dataclass
class RunSettings:
    """How a run evaluates each object.

    Attributes:
        protocol: ``clicks`` (the standard click protocol) or ``prompts`` (Stable-SAM's protocol).
        max_clicks: clicks per object (clicks protocol).
        seed: seed of random tie-breaks (with ``random_ties``) and of the prompt draws.
        random_ties: break ties among maximal pixels at random (FocSAM) instead of row-major first.
        with_boundary: also record the boundary IoU after each click (clicks protocol).
        box_noise: the noisy-box level s (prompts protocol).
        num_prompts: prompts per object and type (prompts protocol).
        prompt_types: the prompt types (prompts protocol).
    """

    protocol: str = "clicks"
    max_clicks: int = 20
    seed: int = 0
    random_ties: bool = False
    with_boundary: bool = False
    box_noise: float = 0.4
    num_prompts: int = 20
    prompt_types: tuple[str, ...] = PROMPT_TYPES

    def __post_init__(self) -> None:
        if self.protocol not in ("clicks", "prompts"):
            raise ValueError(f"protocol must be 'clicks' or 'prompts', got {self.protocol!r}")
        if self.max_clicks < 1 or self.num_prompts < 1:
            raise ValueError("max_clicks and num_prompts must be >= 1")
        unknown = set(self.prompt_types) - set(PROMPT_TYPES)
        if unknown:
            raise ValueError(f"unknown prompt type(s) {sorted(unknown)}; choose from {', '.join(PROMPT_TYPES)}")
        self.prompt_types = tuple(self.prompt_types)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["prompt_types"] = list(self.prompt_types)
        return out


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a run folder."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise ValueError(f"{run_dir} is not an evaluation run folder: {RUN_CONFIG} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RuntimeError(f"cannot parse {path}: {exc}") from exc


def prepare_run_dir(run_dir: str | Path, settings: RunSettings, segmenter: Segmenter,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create the run folder or check that a resumed run has the same settings; returns the config.

    Raises:
        RuntimeError: the folder holds a run made with different settings.
    """
    run_dir = Path(run_dir)
    config: dict[str, Any] = {**settings.to_json(), "segmenter": segmenter.describe(), **(extra or {})}
    path = run_dir / RUN_CONFIG
    if path.is_file():
        old = read_run_config(run_dir)
        diffs = [f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in _RESUME_KEYS if old.get(k) != config.get(k)]
        if diffs:
            raise RuntimeError(f"{run_dir} holds a run with other settings ({'; '.join(diffs)}); "
                               "resume it with the same options or choose another --out")
        config["datasets"] = list(dict.fromkeys([*old.get("datasets", []), *config.get("datasets", [])]))
        for key in ("objects", "data_roots"):
            if isinstance(old.get(key), dict):
                config[key] = {**old[key], **config.get(key, {})}
        config["created"] = old.get("created", config.get("created"))
    else:
        config.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_json(path, config)
    return config


def _group_by_image(objects: Sequence[EvalObject]) -> Iterator[list[EvalObject]]:
    group: list[EvalObject] = []
    for obj in objects:
        if group and obj.image_path != group[0].image_path:
            yield group
            group = []
        group.append(obj)
    if group:
        yield group


def run_dataset(dataset: EvalDataset, segmenter: Segmenter, run_dir: str | Path, settings: RunSettings,
                limit: int | None = None, progress: bool = True,
                on_skip: Optional[Callable[[EvalObject, str], None]] = None) -> list[dict[str, Any]]:
    """Evaluate every object of ``dataset`` not yet in ``run_dir/<dataset>.jsonl``.

    Objects of one image are evaluated together after one ``set_image``. Each object's record is
    appended (and fsync'ed) as soon as it is done.

    Args:
        dataset: the loader.
        segmenter: the system under evaluation.
        run_dir: the run folder (see :func:`prepare_run_dir`).
        settings: the protocol settings.
        limit: evaluate only the first ``limit`` objects of the dataset.
        progress: show a tqdm progress bar.
        on_skip: called with ``(object, reason)`` for an object whose image or mask cannot be read
            (:class:`~clicksam.images.ImageReadError`, :class:`DatasetError`); the object is left
            out of this run and the others go on. None: such an error stops the run.

    Returns:
        The records of the evaluated objects in dataset order (earlier and new ones).

    Raises:
        RuntimeError: the log holds records of objects that are not in the dataset.
    """
    from tqdm import tqdm

    objects = dataset.objects[:limit] if limit is not None else dataset.objects
    log = ResultLog(Path(run_dir) / f"{dataset.name}.jsonl")
    done = {r["object_id"]: r for r in log.read()}
    unknown = set(done) - {o.object_id for o in dataset.objects}
    if unknown:
        raise RuntimeError(f"{log.path} has results for objects that {dataset.name} at {dataset.root} does "
                           f"not list (e.g. {sorted(unknown)[0]!r}); is --data-root the same as before?")
    todo = [o for o in objects if o.object_id not in done]
    bar = tqdm(total=len(objects), initial=len(objects) - len(todo), desc=dataset.name, unit="obj",
               disable=not progress, dynamic_ncols=True)
    try:
        for group in _group_by_image(todo):
            try:
                image = dataset.load_image(group[0])
            except ValueError as exc:  # ImageReadError, DatasetError: both say which file and why
                if on_skip is None:
                    raise
                _skip(group, str(exc), on_skip, bar)
                continue
            start = time.perf_counter()
            segmenter.set_image(image, group[0].image_id)
            encode_seconds = time.perf_counter() - start
            for index, obj in enumerate(group):
                try:
                    gt = dataset.load_gt(obj, image.shape)
                except ValueError as exc:
                    if on_skip is None:
                        raise
                    _skip([obj], str(exc), on_skip, bar)
                    continue
                record = _evaluate_object(segmenter, gt, obj, settings)
                record["image_id"] = obj.image_id
                record["encode_seconds"] = encode_seconds if index == 0 else 0.0
                log.append(record)
                done[obj.object_id] = record
                bar.update(1)
    finally:
        bar.close()
    return [done[o.object_id] for o in objects if o.object_id in done]


def _skip(objects: Sequence[EvalObject], reason: str, on_skip: Callable[[EvalObject, str], None], bar: Any) -> None:
    for obj in objects:
        on_skip(obj, reason)
        bar.update(1)


def _evaluate_object(segmenter: Segmenter, gt: np.ndarray, obj: EvalObject, settings: RunSettings) -> dict[str, Any]:
    if settings.protocol == "prompts":
        return evaluate_prompts(segmenter, gt, obj.object_id, settings.prompt_types, settings.num_prompts,
                                settings.box_noise, settings.seed)
    rng = None
    if settings.random_ties:
        from .prompts import prompt_rng

        rng = prompt_rng(settings.seed, obj.object_id, "clicks")
    result = evaluate_clicks(segmenter, gt, obj.object_id, settings.max_clicks, rng, settings.with_boundary)
    return result.to_record()

