"""Synthetic segmentation scenes for tests and smoke runs.

Each scene is a textured background with one *target* object (a textured shape, sometimes with
thin parts: rings, thin limbs, long strokes) and a few *distractor* objects of other shapes and
textures, some of them touching or overlapping the target. Everything is a pure function of
``(seed, index)``: the same arguments always give the same pixels, on every machine.

Example:
    >>> scene = make_scene(seed=0, index=3)
    >>> scene.image.shape, scene.image.dtype, scene.mask.dtype
    ((352, 448, 3), dtype('uint8'), dtype('bool'))

``SyntheticSource(count, seed)`` serves such scenes as training objects (dataset type
``synthetic`` in a training config), drawing each when it is loaded (~0.1 s a scene).
``RenderedSynthetic(count, seed, render)`` (type ``synthetic-rendered``) draws them once, at a
training frame's resolution, and serves them from memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from clicksam.train.data import ObjectSource, RawObject
from clicksam.transforms import ResizeLongestSide

SHAPES = ("ellipse", "polygon", "star", "ring", "limbs", "stroke")


@dataclass(frozen=True)
class SyntheticScene:
    """One scene.

    Attributes:
        image: H×W×3 uint8 RGB.
        mask: H×W bool, the target object (what a sample asks to segment).
        instances: H×W int32, 0 background, 1 the target, 2.. the distractors (later objects
            drawn on top of earlier ones, so a distractor may hide part of the target; ``mask``
            is ``instances == 1``).
        shape: the target's shape family (one of ``SHAPES``).
    """

    image: np.ndarray
    mask: np.ndarray
    instances: np.ndarray
    shape: str


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random colour texture, H×W×3 float32 in [0, 255]: a base colour modulated by gratings,
    checks or smooth noise, plus pixel noise."""
    base = rng.uniform(20, 235, size=3).astype(np.float32)
    second = rng.uniform(20, 235, size=3).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(0, 4)
    if kind == 0:  # oriented grating
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(4, 24)
        phase = np.cos(angle) * xx + np.sin(angle) * yy
        weight = 0.5 + 0.5 * np.sin(2 * np.pi * phase / period)
    elif kind == 1:  # checks
        cell = int(rng.integers(4, 20))
        weight = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
    elif kind == 2:  # smooth blotches
        small = rng.uniform(0, 1, size=(max(2, height // 16), max(2, width // 16))).astype(np.float32)
        weight = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        weight = np.clip(weight, 0, 1)
    else:  # linear gradient
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * xx / max(width, 1) + np.sin(angle) * yy / max(height, 1)
        weight = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    out = base[None, None] * (1 - weight[..., None]) + second[None, None] * weight[..., None]
    out += rng.normal(0, rng.uniform(2, 12), size=out.shape).astype(np.float32)
    return np.clip(out, 0, 255)


def _polygon_points(rng: np.random.Generator, cx: float, cy: float, radius: float, star: bool) -> np.ndarray:
    count = int(rng.integers(5, 12)) * (2 if star else 1)
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=count))
    if star:
        radii = np.where(np.arange(count) % 2 == 0, radius, radius * rng.uniform(0.3, 0.55))
    else:
        radii = radius * rng.uniform(0.6, 1.0, size=count)
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    return np.round(pts).astype(np.int32)


def _shape_mask(rng: np.random.Generator, height: int, width: int, shape: str, scale: float) -> np.ndarray:
    """Draw one shape of family ``shape`` somewhere inside an H×W canvas; returns H×W bool."""
    canvas = np.zeros((height, width), np.uint8)
    radius = scale * min(height, width) * rng.uniform(0.12, 0.3)
    margin = radius * 0.6
    cx = rng.uniform(margin, width - margin)
    cy = rng.uniform(margin, height - margin)
    center = (int(round(cx)), int(round(cy)))
    if shape == "ellipse":
        axes = (max(2, int(radius * rng.uniform(0.5, 1.0))), max(2, int(radius * rng.uniform(0.3, 1.0))))
        cv2.ellipse(canvas, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif shape in ("polygon", "star"):
        cv2.fillPoly(canvas, [_polygon_points(rng, cx, cy, radius, star=shape == "star")], 1)
    elif shape == "ring":  # thin closed band
        thickness = int(rng.integers(2, 6))
        axes = (max(4, int(radius)), max(4, int(radius * rng.uniform(0.5, 1.0))))
        cv2.ellipse(canvas, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness)
    elif shape == "limbs":  # a body with thin legs / antennae
        body = (max(3, int(radius * 0.5)), max(3, int(radius * 0.35)))
        cv2.ellipse(canvas, center, body, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        for _ in range(int(rng.integers(2, 6))):
            angle = rng.uniform(0, 2 * np.pi)
            length = radius * rng.uniform(0.8, 1.5)
            end = (int(round(cx + length * np.cos(angle))), int(round(cy + length * np.sin(angle))))
            cv2.line(canvas, center, end, 1, int(rng.integers(1, 4)))
    elif shape == "stroke":  # long thin curved stroke
        count = int(rng.integers(3, 7))
        pts = np.stack([rng.uniform(0, width, count), rng.uniform(0, height, count)], axis=1)
        pts = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [pts], False, 1, int(rng.integers(2, 7)))
    else:
        raise ValueError(f"unknown synthetic shape {shape!r}; choose one of {SHAPES}")
    return canvas.astype(bool)


def make_scene(
    seed: int,
    index: int,
    size: tuple[int, int] | None = None,
    num_distractors: tuple[int, int] = (1, 4),
    min_area: int = 64,
) -> SyntheticScene:
    """Generate scene ``index`` of the family ``seed``.

    Args:
        seed: family seed; scenes with the same (seed, index) are identical.
        index: scene number, ≥ 0.
        size: (H, W) of the image; None draws H and W from [256, 448] in steps of 32.
        num_distractors: inclusive range of the number of distractor objects.
        min_area: the target keeps at least this many visible pixels (it is redrawn otherwise).
    Returns:
        a ``SyntheticScene``.
    """
    if index < 0:
        raise ValueError(f"scene index must be >= 0, got {index}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index)])
    if size is None:
        height, width = (int(v) * 32 for v in rng.integers(8, 15, size=2))
    else:
        height, width = int(size[0]), int(size[1])
    if height < 32 or width < 32:
        raise ValueError(f"synthetic scenes need H, W >= 32, got {(height, width)}")
    image = _texture(rng, height, width)
    instances = np.zeros((height, width), np.int32)
    shape = SHAPES[int(rng.integers(0, len(SHAPES)))]
    for _attempt in range(20):
        target = _shape_mask(rng, height, width, shape, scale=1.0)
        if int(target.sum()) >= min_area:
            break
    else:  # pragma: no cover - a filled ellipse always succeeds
        target = _shape_mask(rng, height, width, "ellipse", scale=1.5)
    layers = [(target, _texture(rng, height, width))]
    for _ in range(int(rng.integers(num_distractors[0], num_distractors[1] + 1))):
        kind = SHAPES[int(rng.integers(0, len(SHAPES)))]
        layers.append((_shape_mask(rng, height, width, kind, scale=0.8), _texture(rng, height, width)))
    # Distractors drawn under the target half of the time, on top of it otherwise.
    order = list(range(len(layers)))
    if rng.uniform() < 0.5:
        order = order[1:] + order[:1]
    for layer in order:
        region, texture = layers[layer]
        image[region] = texture[region]
        instances[region] = layer + 1
    mask = instances == 1
    if int(mask.sum()) < min_area:  # covered by distractors: put the target back on top
        image[target] = layers[0][1][target]
        instances[target] = 1
        mask = instances == 1
    return SyntheticScene(image=np.round(image).astype(np.uint8), mask=mask, instances=instances, shape=shape)


class SyntheticSource(ObjectSource):
    """``count`` synthetic scenes of family ``seed``, one target object each."""

    def __init__(self, count: int = 64, seed: int = 0, size: Optional[list[int]] = None) -> None:
        super().__init__()
        if count < 1:
            raise ValueError(f"synthetic count must be >= 1, got {count}")
        self.count, self.seed = int(count), int(seed)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.name = f"synthetic-{self.seed}"

    def __len__(self) -> int:
        return self.count

    def image_keys(self) -> list[str]:
        return [f"{self.name}/{i:06d}" for i in range(self.count)]

    def read_image(self, key: str) -> np.ndarray:
        return make_scene(self.seed, int(key.rsplit("/", 1)[1]), self.size).image

    def load_object(self, index: int, rng: np.random.Generator, with_image: bool = True) -> Optional[RawObject]:
        scene = make_scene(self.seed, index, self.size)
        return RawObject(scene.image if with_image else None, scene.mask, None, f"{self.name}/{index:06d}")


RENDER_VERSION = 1  # bump when make_scene or the rendering below changes (invalidates render caches)


def render_scenes(seed: int, count: int, render: int, workers: int = 1,
                  start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scenes start..start+count-1 of family ``seed`` resized to longest side ``render`` (the image
    as SAM's transforms resize it, PIL bilinear; the mask nearest-neighbour), top-left in square
    arrays: images N×R×R×3 uint8, masks N×R×R bool (zero padding), sizes N×2 int64 (h, w).
    ``workers`` > 1 draws them in that many processes (the same arrays)."""
    if workers > 1 and count > 1:
        from concurrent.futures import ProcessPoolExecutor

        bounds = np.linspace(0, count, min(workers, count) + 1).astype(int)
        with ProcessPoolExecutor(len(bounds) - 1) as pool:
            chunks = list(pool.map(render_scenes, *zip(*[(seed, int(b - a), render, 1, start + int(a))
                                                         for a, b in zip(bounds[:-1], bounds[1:])])))
        return tuple(np.concatenate(parts) for parts in zip(*chunks))  # type: ignore[return-value]
    transform = ResizeLongestSide(render)
    images = np.zeros((count, render, render, 3), np.uint8)
    masks = np.zeros((count, render, render), bool)
    sizes = np.zeros((count, 2), np.int64)
    for i in range(count):
        scene = make_scene(seed, start + i)
        image = transform.apply_image(scene.image)
        h, w = image.shape[:2]
        images[i, :h, :w] = image
        masks[i, :h, :w] = cv2.resize(scene.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        sizes[i] = (h, w)
    return images, masks, sizes


class RenderedSynthetic(ObjectSource):
    """``count`` synthetic scenes of family ``seed``, drawn once at longest side ``render`` (see
    :func:`render_scenes`) and served from memory: loading a sample costs no drawing. For a
    training frame of side ``render`` the dataset's resize is then the identity.

    Args:
        count: number of scenes (≥ 1).
        seed: the scene family.
        render: longest side of the served images and masks, in pixels.
        cache: a folder where the rendered arrays are kept (``.npy`` files, memory-mapped on
            reading, so runs and processes share them); None renders in the constructor.
        workers: processes that draw the scenes when they are not cached yet (the same arrays).
    """

    def __init__(self, count: int = 64, seed: int = 0, render: int = 256, cache: Optional[str] = None,
                 workers: int = 1) -> None:
        super().__init__()
        if count < 1 or render < 32:
            raise ValueError(f"synthetic-rendered needs count >= 1 and render >= 32, got {count}, {render}")
        self.count, self.seed, self.render = int(count), int(seed), int(render)
        self.name = f"synthetic-{self.seed}@{self.render}"
        self.workers = int(workers)
        if cache is None:
            self.images, self.masks, self.sizes = render_scenes(self.seed, self.count, self.render, self.workers)
        else:
            self.images, self.masks, self.sizes = self._cached(Path(cache))

    def _cached(self, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from clicksam.io.atomic import atomic_path

        stem = f"synthetic_v{RENDER_VERSION}_{self.seed}_{self.count}_{self.render}"
        paths = [folder / f"{stem}_{part}.npy" for part in ("images", "masks", "sizes")]
        if not all(path.is_file() for path in paths):
            for path, array in zip(paths, render_scenes(self.seed, self.count, self.render, self.workers)):
                with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                    np.save(handle, array)
        images, masks, sizes = (np.load(path, mmap_mode="r") for path in paths)
        if images.shape != (self.count, self.render, self.render, 3) or len(sizes) != self.count:
            raise ValueError(f"{paths[0]} holds other scenes ({images.shape}); delete the {stem}_*.npy files")
        return images, masks, np.asarray(sizes)

    def __len__(self) -> int:
        return self.count

    def image_keys(self) -> list[str]:
        return [f"{self.name}/{i:06d}" for i in range(self.count)]

    def read_image(self, key: str) -> np.ndarray:
        index = int(key.rsplit("/", 1)[1])
        h, w = self.sizes[index]
        return np.array(self.images[index, :h, :w])

    def load_object(self, index: int, rng: np.random.Generator, with_image: bool = True) -> Optional[RawObject]:
        h, w = self.sizes[index]
        image = np.array(self.images[index, :h, :w]) if with_image else None
        return RawObject(image, np.array(self.masks[index, :h, :w]), None, f"{self.name}/{index:06d}")
