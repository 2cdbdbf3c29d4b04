"""Downloading official checkpoints into the cache: resumable, size- and sha256-checked, atomic."""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from clicksam.cache import default_cache_dir
from clicksam.registry import WeightsInfo, get_config

CHUNK = 1 << 20


def weights_info(name: str) -> WeightsInfo:
    config = get_config(name)
    if config.weights is None:
        raise ValueError(f"model {name!r} has no official weights (it is a test configuration); build it without a checkpoint")
    return config.weights


def cached_checkpoint(name: str, cache_dir: Optional[Path] = None) -> Path:
    """Where the official file of ``name`` lives in the cache (it may not exist yet)."""
    return Path(cache_dir or default_cache_dir()) / weights_info(name).filename


class MissingWeightsError(RuntimeError):
    """A real model size was asked for without weights, and its official file is not in the cache.

    ``model_name`` names the model; the message says where to put the file and how to download it.
    """

    def __init__(self, model_name: str, message: str) -> None:
        super().__init__(message)
        self.model_name = model_name


def missing_checkpoint_message(name: str, cache_dir: Optional[Path] = None, cli: bool = True) -> str:
    """Where to put the official file of ``name`` and how to get it, worded for the command line
    (``--checkpoint``, ``--random-weights``) or for Python (``checkpoint=``, ``random_weights=True``)."""
    info = weights_info(name)
    target = cached_checkpoint(name, cache_dir)
    checkpoint, random_weights = (("--checkpoint PATH", "--random-weights") if cli
                                  else ("checkpoint=PATH", "random_weights=True"))
    return (
        f"the {name} checkpoint is not in the cache. Run `clicksam download {name}`, or download "
        f"{info.download_url} ({info.num_bytes:,} bytes) by hand and put it at {target} "
        f"(set CLICKSAM_CACHE to use another folder), or pass {checkpoint}. To run it with random weights "
        f"on purpose (meaningless masks: tests and speed checks only), pass {random_weights}"
    )


def find_checkpoint(name: str, cache_dir: Optional[Path] = None) -> Path:
    """The cached official file of ``name``; :class:`MissingWeightsError` with the download instruction if absent."""
    path = cached_checkpoint(name, cache_dir)
    if not path.is_file():
        raise MissingWeightsError(name, missing_checkpoint_message(name, cache_dir))
    return path


def cache_state(name: str, verify: bool = False, cache_dir: Optional[Path] = None) -> tuple[str, bool]:
    """What the cache holds for ``name``'s official file: ``(state, usable)``.

    ``state`` is one of "cached", "cached, sha256 verified" (with ``verify``), "not downloaded",
    "partial download (N%, resumable)", "incomplete (A of B bytes)", "wrong size (A bytes, expected B)",
    "corrupt (sha256 mismatch)" or "random weights (test config)" for a model without official weights;
    ``usable`` is True for the first two only. The size is always checked, the sha256 only with ``verify``.
    """
    config = get_config(name)
    if config.weights is None:
        return "random weights (test config)", False
    info = config.weights
    path = cached_checkpoint(name, cache_dir)
    if not path.is_file():
        part = path.with_name(path.name + ".part")
        if part.is_file():
            return f"partial download ({100 * part.stat().st_size // info.num_bytes}%, resumable)", False
        return "not downloaded", False
    size = path.stat().st_size
    if size < info.num_bytes:
        return f"incomplete ({size:,} of {info.num_bytes:,} bytes)", False
    if size > info.num_bytes:
        return f"wrong size ({size:,} bytes, expected {info.num_bytes:,})", False
    if not verify:
        return "cached", True
    if _sha256_of(path) != info.sha256:
        return "corrupt (sha256 mismatch)", False
    return "cached, sha256 verified", True


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def download_file(info: WeightsInfo, target: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch ``info`` to ``target`` through ``target.part``; an interrupted download resumes from
    the partial file (HTTP Range). The file appears at ``target`` only after its size and sha256
    match; a mismatch deletes the partial file and raises RuntimeError."""
    from tqdm import tqdm

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if have > info.num_bytes:
        part.unlink()
        have = 0
    if have < info.num_bytes:
        request = urllib.request.Request(info.download_url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - https URL from the registry
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(
                f"could not download {info.download_url}: {exc}. Download it by hand and put it at {target} "
                "(set CLICKSAM_CACHE to use another folder)"
            ) from exc
        with response:
            if have and response.status != 206:  # server ignored the range: start over
                have = 0
            mode = "ab" if have else "wb"
            with open(part, mode) as out, tqdm(total=info.num_bytes, initial=have, unit="B", unit_scale=True,
                                              desc=info.filename, disable=not progress) as bar:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except OSError as exc:
                        raise RuntimeError(
                            f"the download of {info.filename} broke off after {out.tell():,} bytes ({exc}); "
                            "run the same command again to resume"
                        ) from exc
                    if not block:
                        break
                    out.write(block)
                    bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
    size = part.stat().st_size
    if size != info.num_bytes:
        raise RuntimeError(
            f"the download of {info.filename} is incomplete: {size:,} of {info.num_bytes:,} bytes; run the command again to resume"
        )
    digest = _sha256_of(part)
    if digest != info.sha256:
        part.unlink()
        raise RuntimeError(f"{info.filename}: sha256 {digest} does not match the expected {info.sha256}; the partial file was deleted, try again")
    os.replace(part, target)
    return target


def download_checkpoint(name: str, cache_dir: Optional[Path] = None, progress: bool = True, force: bool = False) -> Path:
    """Make sure the official checkpoint of ``name`` is in the cache and intact; returns its path."""
    info = weights_info(name)
    target = cached_checkpoint(name, cache_dir)
    if target.is_file() and not force:
        if target.stat().st_size == info.num_bytes:
            return target
        target.unlink()  # a wrong-size file is not ours to keep using
    return download_file(info, target, progress=progress)
