"""The ``TrainMethod`` interface: how a method plugs into the shared trainer.

A method says which parts of the model train and how a batch becomes a loss; the trainer owns
everything else (data, embeddings, prompts' randomness, optimiser, schedule, AMP, DDP, checkpoints,
logging, the method file). To add one::

    from clicksam.train.method import Batch, LossOutput, TrainMethod, register_method

    @register_method
    class StableSamTraining(TrainMethod):
        name = "stable-sam"                       # the --method value
        stages = ("stable-sam",)                  # methods build_sam attaches (registry names)
        trainable_prefixes = ("stable_sam",)      # model attributes that train and are saved
        default_options = {"box_noise": 0.5}      # config "options" (unknown keys are refused)

        def compute_loss(self, batch: Batch) -> LossOutput:
            features = batch.features_at()        # the feature bundle (B×256×64×64 embedding, ...)
            target = batch.target_grid()          # B×1×256×256: 1 object, 0 background, -1 ignore
            boxes = prompts.noisy_boxes(prompts.object_boxes(target), batch.input_size, batch.rng)
            out = self.model.decode(features, boxes=boxes, multimask_output=False, hooks=decoder_hooks(self.model.stable_sam))
            loss = (losses.bce_loss(out.low_res_logits, target) + losses.dice_loss(out.low_res_logits, target)).mean()
            return LossOutput(loss, {"bce_dice": loss.detach()})

Then make the trainer find the class: name it in the method's spec
(``MethodSpec(..., training="my_method.training:MyTraining")``, see :mod:`clicksam.methods`), or
import the module (``@register_method`` adds it to ``METHODS``) before the run; the runner's
:func:`clicksam.training.methods.get_method` looks in both places.

``trainable_prefixes`` / ``saved_prefixes`` name model attributes; ``"mask_decoder"`` means the
model family's decoder (``model.decoder_attribute``: SAM 2's is ``sam_mask_decoder``), so a method
written for SAM trains the same part of every family. Decode with the batch's feature bundle
(``batch.features_at(index, embedding=...)``), which every family's ``decode`` takes.

Rules a method must follow so that resumption is exact and DDP equals one process:
    * draw every random number from ``batch.rng`` (one stream per sample), never from the
      global generators or from anything that depends on the batch's composition;
    * keep each sample's computation independent of the other samples in the batch (decode
      samples with different click counts in separate calls rather than padding them together);
    * return the batch mean of per-sample losses (the trainer averages over processes).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import torch
from torch import nn

from clicksam.models.sam import EMBEDDING
from clicksam.train.data import downsample_target
from clicksam.train.prompts import SampleRandom


# the role name of the mask decoder in trainable_prefixes / saved_prefixes
DECODER = "mask_decoder"


@dataclass
class Batch:
    """One process's share of a training step, on the training device.

    Attributes:
        embedding: B×256×64×64 float32 image embeddings (frozen encoder); None for a method that
            trains the encoder (``trains_encoder``): it encodes ``image`` itself.
        target: B×1×S×S int8 object map in the model's S=1024 frame (1 / 0 / -1 ignore).
        input_size: B×2 long (h, w) of each resized image in the frame (top-left aligned).
        rng: per-sample random streams (see ``clicksam.train.prompts.SampleRandom``).
        step: the global step being computed (0-based).
        image: B×3×S×S uint8 RGB padded image, when the method sets ``needs_image``.
        index: B long sample indices (for debugging and logging).
        features: the rest of the image feature bundle (SAM 2's skips, HQ-SAM's early feature),
            name -> B×... float32; None or empty for SAM (see :meth:`features_at`).
    """

    embedding: Optional[torch.Tensor]
    target: torch.Tensor
    input_size: torch.Tensor
    rng: SampleRandom
    step: int
    image: Optional[torch.Tensor] = None
    index: Optional[torch.Tensor] = None
    features: Optional[dict[str, torch.Tensor]] = None
    _grids: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

    def features_at(self, index: Optional[torch.Tensor] = None,
                    embedding: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """The feature bundle the model's ``decode`` takes, for the samples ``index`` (all when None):
        ``embedding`` (already for those samples: e.g. a refocused one) or the batch's embedding,
        plus the other entries of the bundle."""
        if embedding is None:
            embedding = self.embedding if index is None else self.embedding[index]
        rest = {name: (t if index is None else t[index]) for name, t in (self.features or {}).items() if name != EMBEDDING}
        return {EMBEDDING: embedding, **rest}

    @property
    def size(self) -> int:
        return int(self.target.shape[0])

    def target_grid(self, size: int = 256) -> torch.Tensor:
        """The target on a size×size grid over the frame (B×1×size×size float, 1/0/-1); cached."""
        if size not in self._grids:
            self._grids[size] = downsample_target(self.target, size)
        return self._grids[size]


@dataclass
class LossOutput:
    """loss: scalar tensor to minimise (the batch mean); metrics: scalar tensors to log (the
    trainer averages them over processes and logging windows)."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class TrainMethod(abc.ABC):
    """Base class of training methods (see the module docstring).

    Class attributes:
        name: the ``--method`` value.
        stages: method stages to attach to the model (names in ``clicksam.methods.list_methods()``).
        trainable_prefixes: model attributes (``"mask_decoder"``, ``"stable_sam"``, ...) whose
            parameters train; everything else is frozen. They are what the method file holds,
            unless ``saved_prefixes`` says otherwise.
        saved_prefixes: model attributes written to the method file, when that is more than
            what trains (FocSAM saves the fine-tuned decoder its refiner was trained against).
        needs_image: batches carry the padded image even when embeddings come from a store.
        trains_encoder: the method trains the image encoder, so the trainer hands it the image and
            no embedding (``batch.embedding`` is None; encode ``batch.image`` with gradient).
        find_unused_parameters: DDP must tolerate trainable parameters without a gradient in a
            step (e.g. SAM's multimask heads when only the single-mask token is trained).
        default_options: the method's options and their defaults (config ``options``).
    """

    name: ClassVar[str] = ""
    stages: ClassVar[tuple[str, ...]] = ()
    trainable_prefixes: ClassVar[tuple[str, ...]] = ()
    saved_prefixes: ClassVar[tuple[str, ...]] = ()
    needs_image: ClassVar[bool] = False
    trains_encoder: ClassVar[bool] = False
    find_unused_parameters: ClassVar[bool] = True
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, model: nn.Module, options: Optional[dict[str, Any]] = None) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            raise ValueError(f"method '{self.name}' has no option(s) {unknown}; its options: {sorted(self.default_options)}")
        self.options: dict[str, Any] = {**self.default_options, **options}
        self.model = model
        for prefix in self.attributes(self.trainable_prefixes):
            if model._modules.get(prefix) is None:
                raise ValueError(f"method '{self.name}' trains model.{prefix}, which this model does not have; "
                                 f"attach the stage(s) {self.stages} when building it")

    def attributes(self, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        """``prefixes`` as this model's attributes (``"mask_decoder"``: the family's decoder)."""
        decoder = getattr(self.model, "decoder_attribute", DECODER)
        return tuple(decoder if prefix == DECODER else prefix for prefix in prefixes)

    def prepare(self) -> None:
        """Freeze everything but ``trainable_prefixes`` (override to initialise new modules too).
        Parameters that make the per-image features (``model.extra_feature_prefixes``, e.g. SAM 2's
        skip projections inside its decoder) stay frozen: the features come from the store."""
        trainable = self.attributes(self.trainable_prefixes)
        extra = tuple(getattr(self.model, "extra_feature_prefixes", ()))
        for name, param in self.model.named_parameters():
            feature_param = name.startswith(extra) or name in extra
            param.requires_grad_(name.split(".", 1)[0] in trainable and not feature_param)

    def file_prefixes(self) -> tuple[str, ...]:
        """The model attributes the finished run writes to its method file."""
        return tuple(dict.fromkeys(self.attributes(self.trainable_prefixes + self.saved_prefixes)))

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) pairs that the optimiser updates, in a fixed order."""
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def train_mode(self) -> None:
        """Put the model in the right mode for a step: trainable parts train(), the rest eval()."""
        self.model.eval()
        for attribute in self.attributes(self.trainable_prefixes):
            self.model._modules[attribute].train()

    @abc.abstractmethod
    def compute_loss(self, batch: Batch) -> LossOutput:
        """Turn one batch into the loss (see the rules in the module docstring)."""


class LossModule(nn.Module):
    """Wraps model + method so that DistributedDataParallel sees one forward per step."""

    def __init__(self, method: TrainMethod) -> None:
        super().__init__()
        self.model = method.model
        self.method = method

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.method.compute_loss(batch)
        if out.loss.dim() != 0:
            raise RuntimeError(f"method '{self.method.name}' returned a loss of shape {tuple(out.loss.shape)}; "
                               "it must be a scalar")
        return out.loss, out.metrics


# Training methods registered by ``@register_method`` (name -> class); the runner's
# ``clicksam.training.methods.get_method`` also imports the ones method specs name.
METHODS: dict[str, type[TrainMethod]] = {}


def register_method(cls: type[TrainMethod]) -> type[TrainMethod]:
    """Class decorator: make ``cls`` available to the trainer under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set a non-empty class attribute 'name'")
    METHODS[cls.name] = cls
    return cls
