"""Training samples: one object per sample, resized to the model's frame, with deterministic
augmentation and a resumable, DDP-aware batch order.

A *source* (see :mod:`clicksam.train.readers`) lists objects and loads them at their original
size. ``ObjectDataset`` turns source objects into training samples:

    ``dataset[(epoch, index)]`` -> dict with
        ``target``      int8 1×S×S, the object in the model family's S-frame (S = 1024; SAM: the
                        longest side resized and zero-padded, SAM 2: the whole image resized to
                        S×S): 1 object, 0 background, -1 ignore (padding and any ignore region),
        ``input_size``  long (h, w) of the resized image in the frame (top-left aligned),
        ``seed``        int64, the sample's seed for :class:`clicksam.train.prompts.SampleRandom`,
        ``index``       long, the sample index,
        ``skipped``     long, invalid objects met (and replaced) while loading this sample,
        ``image``       uint8 3×S×S RGB, padded with zeros (only with ``with_image=True``),
        ``feature.<name>``  float16, each entry of the image's feature bundle (only with an
                        embedding ``store``; SAM: ``feature.embedding`` 256×64×64).

Every random choice of a sample (augmentation, the instance picked from an image, prompts) comes
from seeds derived from ``(seed, epoch, index)``: a sample is the same whichever worker, rank or
resumed run loads it.
"""
from __future__ import annotations

import abc
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from clicksam.transforms import SamTransforms

FEATURE_PREFIX = "feature."  # sample entries holding the stored feature bundle

MAX_REPLACEMENTS = 64


@dataclass
class RawObject:
    """One object at the source's resolution.

    image: H×W×3 uint8 RGB (None when the caller did not ask for pixels); mask: H×W bool object;
    ignore: H×W bool or None (pixels that are neither object nor background, e.g. crowd
    regions); image_key: the image's key in an
    embedding store (unique across sources).
    """

    image: Optional[np.ndarray]
    mask: np.ndarray
    ignore: Optional[np.ndarray]
    image_key: str


class ObjectSource(abc.ABC):
    """A list of objects (one training sample each) and the images they live in.

    Subclasses fill ``self.skipped`` (a Counter of reasons) with annotations rejected while
    indexing, and return None from ``load_object`` for one found invalid when loaded (it is then
    replaced by another sample and counted by the dataset).
    """

    name: str = "source"

    def __init__(self) -> None:
        self.skipped: Counter[str] = Counter()

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of objects (samples)."""

    @abc.abstractmethod
    def image_keys(self) -> list[str]:
        """Keys of the distinct images, in a fixed order (what an embedding store holds)."""

    @abc.abstractmethod
    def read_image(self, key: str) -> np.ndarray:
        """The image with this key, H×W×3 uint8 RGB at its original size."""

    @abc.abstractmethod
    def load_object(self, index: int, rng: np.random.Generator, with_image: bool = True) -> Optional[RawObject]:
        """Object ``index`` (``rng`` picks among instances when a source samples them), or None
        when its annotation turns out invalid. ``with_image=False`` skips decoding the image
        (training from an embedding store needs only the mask)."""


@dataclass
class PhotometricAugment:
    """Colour augmentation (geometry is never changed, so cached embeddings stay valid).

    Each part applies with its probability: brightness/contrast (``x·c + b·255``), a per-channel
    RGB shift, and a hue/saturation jitter.
    """

    brightness: float = 0.25
    contrast: tuple[float, float] = (0.85, 1.4)
    rgb_shift: float = 10.0
    hue_shift: float = 8.0
    saturation: tuple[float, float] = (0.8, 1.2)
    p_brightness_contrast: float = 0.75
    p_rgb_shift: float = 0.75
    p_hue_saturation: float = 0.3

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """H×W×3 uint8 RGB -> augmented H×W×3 uint8 RGB."""
        out = image.astype(np.float32)
        draws = rng.uniform(size=3)
        if draws[0] < self.p_brightness_contrast:
            out = out * rng.uniform(*self.contrast) + rng.uniform(-self.brightness, self.brightness) * 255
        if draws[1] < self.p_rgb_shift:
            out = out + rng.uniform(-self.rgb_shift, self.rgb_shift, size=3).astype(np.float32)
        out = np.clip(out, 0, 255)
        if draws[2] < self.p_hue_saturation:
            hsv = cv2.cvtColor(out.astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
            hsv[..., 0] = (hsv[..., 0] + rng.uniform(-self.hue_shift, self.hue_shift)) % 180
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*self.saturation), 0, 255)
            out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        return np.round(out).astype(np.uint8)


def sample_seed(seed: int, epoch: int, index: int, stream: int) -> int:
    """A 63-bit seed for one random stream of one sample (stream 0: data, 1: prompts)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index, stream]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFFFFFFFFFFFFFF


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W bool -> h×w bool (bilinear on 0/1, threshold 0.5: thin parts survive downscaling
    better than nearest-neighbour)."""
    h, w = size
    if mask.shape == (h, w):
        return mask.astype(bool)
    return cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5


@dataclass
class ObjectDataset(torch.utils.data.Dataset):
    """Samples from one or more sources; indexed by ``(epoch, index)`` (see the module docstring).

    Args:
        sources: object sources, concatenated in order.
        seed: the run's seed.
        image_size: the square model frame S.
        min_area: objects with fewer pixels (at the original size) are replaced.
        augment: photometric augmentation of ``image`` (None: off).
        with_image: include the padded image (needed without a store, or by image-reading methods).
        store: an ``EmbeddingStore`` opened for reading (None: no ``feature.*`` entries).
        transforms: the model family's transforms (``model.transforms()``), which place images and
            masks in the frame; None: SAM's for ``image_size``.
    """

    sources: Sequence[ObjectSource]
    seed: int = 0
    image_size: int = 1024
    min_area: int = 100
    augment: Optional[PhotometricAugment] = None
    with_image: bool = True
    store: Optional[object] = None
    transforms: Optional[object] = None
    _offsets: list[int] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("no training data: give at least one dataset")
        self._offsets = [0]
        for source in self.sources:
            self._offsets.append(self._offsets[-1] + len(source))
        if len(self) == 0:
            empty = ", ".join(f"{s.name} (skipped: {dict(s.skipped)})" for s in self.sources)
            raise ValueError(f"the training sources hold no usable objects: {empty}")
        if self.transforms is None:
            self.transforms = SamTransforms(self.image_size)
        if self.transforms.image_size != self.image_size:
            raise ValueError(f"the transforms' frame {self.transforms.image_size} differs from image_size {self.image_size}")

    def __len__(self) -> int:
        return self._offsets[-1]

    def _locate(self, index: int) -> tuple[ObjectSource, int]:
        pos = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self.sources[pos], index - self._offsets[pos]

    def _load_valid(self, index: int, rng: np.random.Generator) -> tuple[RawObject, int]:
        for attempt in range(min(MAX_REPLACEMENTS, len(self))):
            source, local = self._locate((index + attempt * 7919) % len(self))
            raw = source.load_object(local, rng, self.with_image)
            if raw is not None and int(raw.mask.sum()) >= self.min_area:
                return raw, attempt
        raise RuntimeError(
            f"{min(MAX_REPLACEMENTS, len(self))} objects in a row from sample {index} were invalid or smaller than "
            f"min_area={self.min_area}; check the dataset or lower min_area"
        )

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = int(key[0]), int(key[1])
        rng = np.random.default_rng(sample_seed(self.seed, epoch, index, 0))
        raw, skipped = self._load_valid(index, rng)
        size = self.image_size
        h0, w0 = raw.mask.shape
        if raw.image is not None:
            if raw.image.shape[:2] != (h0, w0):
                raise ValueError(f"{raw.image_key}: image {raw.image.shape[:2]} and mask {(h0, w0)} differ in size")
            image = self.transforms.resize_rgb(raw.image)
            h, w = image.shape[:2]
        else:
            h, w = self.transforms.input_size((h0, w0))
        stored_size = None if self.store is None else self.store.input_sizes.get(raw.image_key)  # type: ignore[attr-defined]
        if stored_size is not None and stored_size != (h, w):
            raise RuntimeError(f"{raw.image_key}: the embedding store has it at {stored_size} but the dataset "
                               f"gives {(h, w)}; the store was built from other images")
        target = np.full((size, size), -1, np.int8)
        target[:h, :w] = resize_mask(raw.mask, (h, w))
        if raw.ignore is not None:
            target[:h, :w][resize_mask(raw.ignore, (h, w))] = -1
        out = {
            "target": torch.from_numpy(target)[None],
            "input_size": torch.tensor([h, w], dtype=torch.long),
            "seed": torch.tensor(sample_seed(self.seed, epoch, index, 1), dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),
            "skipped": torch.tensor(skipped, dtype=torch.long),
        }
        if raw.image is not None:
            if self.augment is not None:
                image = self.augment(image, rng)
            padded = np.zeros((size, size, 3), np.uint8)
            padded[:h, :w] = image
            out["image"] = torch.from_numpy(padded).permute(2, 0, 1).contiguous()
        if self.store is not None:
            for name, tensor in self.store.get_features(raw.image_key).items():  # type: ignore[attr-defined]
                out[FEATURE_PREFIX + name] = tensor
        return out


def downsample_target(target: torch.Tensor, size: int = 256) -> torch.Tensor:
    """B×1×S×S int target (1/0/-1) -> B×1×size×size float target: a cell is ignore when less
    than half of it is valid, else object when at least half of its valid part is object."""
    if target.dim() != 4:
        raise ValueError(f"target must be B×1×S×S, got {tuple(target.shape)}")
    if target.shape[-1] == size:
        return target.float()
    valid = F.adaptive_avg_pool2d((target >= 0).float(), size)
    obj = F.adaptive_avg_pool2d((target == 1).float(), size)
    out = (obj >= 0.5 * valid.clamp(min=1e-6)).float()
    return torch.where(valid >= 0.5, out, torch.full_like(out, -1.0))


class GlobalBatchSampler(torch.utils.data.Sampler):
    """An endless, resumable sequence of batches of ``(epoch, index)`` keys.

    Step t of the run uses the global batch ``perm_e[j·B : (j+1)·B]`` (e = t // steps_per_epoch,
    j = t % steps_per_epoch, ``perm_e`` a permutation seeded by (seed, e), the incomplete tail
    dropped); rank r of W takes the r-th contiguous slice of B/W keys. A 1-process run and a
    W-process run with the same global batch B thus see the same samples at every step.

    Args:
        num_samples: dataset length. global_batch: B. rank, world_size: this process.
        seed: the run's seed. start_step: the first step to produce (resume).
    """

    def __init__(self, num_samples: int, global_batch: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, start_step: int = 0) -> None:
        if global_batch % world_size:
            raise ValueError(f"batch_size {global_batch} must be divisible by the number of processes {world_size}")
        if num_samples < global_batch:
            raise ValueError(f"the dataset has {num_samples} samples, fewer than one batch of {global_batch}")
        self.num_samples, self.global_batch = num_samples, global_batch
        self.rank, self.world_size, self.seed, self.start_step = rank, world_size, seed, start_step
        self.steps_per_epoch = num_samples // global_batch
        self._perm: tuple[int, np.ndarray] | None = None

    def batch(self, step: int) -> list[tuple[int, int]]:
        """This rank's keys for global step ``step``."""
        epoch, j = divmod(step, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed & 0xFFFFFFFF, epoch]).permutation(self.num_samples))
        perm = self._perm[1]
        local = self.global_batch // self.world_size
        start = j * self.global_batch + self.rank * local
        return [(epoch, int(i)) for i in perm[start : start + local]]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a list of samples into a batch (every entry gets a leading B dimension)."""
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
