"""Each method's training on every model family its spec declares: one loss step on the family's
test config (256 frame) gives a finite loss whose gradient reaches the method's module and nothing
else (the base model, SAM 2's per-image skip projections included, stays frozen)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from clicksam.lazy import resolve
from clicksam.methods import attach_stage, get_spec, list_methods
from clicksam.registry import get_config, get_family
from clicksam.train.method import Batch
from clicksam.training.methods import get_method
from clicksam.train.prompts import SampleRandom

S = 256
FAMILY_MODELS = {"sam2": "sam2_tiny", "hq-sam": "hq_tiny"}
PAIRS = [pytest.param(name, model, id=f"{name}-{family}") for family, model in FAMILY_MODELS.items()
         for name in list_methods() if family in get_spec(name).families and get_spec(name).training is not None]


def small_model(model_name: str, method: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = dataclasses.replace(get_config(model_name), image_size=S)
    model = resolve(get_family(config.family).build)(config).eval()
    for stage in get_method(method).stages:
        attach_stage(model, stage)
    return model


def make_batch(model: torch.nn.Module) -> Batch:
    """Two whole-frame images with a disc each (SAM 2's frame is the whole image)."""
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 90, (2, 3, S, S), generator=gen, dtype=torch.uint8)
    rows, cols = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    target = torch.zeros(2, 1, S, S, dtype=torch.int8)
    for i, (cy, cx, r) in enumerate(((100, 120, 50), (150, 90, 60))):
        disc = (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
        image[i, 0][disc] = 220
        target[i, 0][disc] = 1
    sizes = torch.tensor([[S, S], [S, S]])
    with torch.no_grad():
        features = model.encode_features(model.transforms().padded_batch_to_input(image, sizes))
    return Batch(embedding=features["embedding"], features=features, target=target, input_size=sizes,
                 rng=SampleRandom([1, 2]), step=0, image=image)


@pytest.mark.parametrize("method,model_name", PAIRS)
def test_one_loss_step_on_the_family(method, model_name):
    model = small_model(model_name, method)
    trainer = get_method(method)(model, {"max_clicks": 2} if "max_clicks" in get_method(method).default_options else {})
    trainer.prepare()
    trainable = dict(trainer.trainable_parameters())
    attributes = set(trainer.attributes(trainer.trainable_prefixes))
    assert trainable and all(name.split(".")[0] in attributes for name in trainable)
    assert not [n for n in trainable if n.startswith(tuple(model.extra_feature_prefixes)) or n in model.extra_feature_prefixes]
    trainer.train_mode()
    out = trainer.compute_loss(make_batch(model))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in trainable.values())
    frozen = [n for n, p in model.named_parameters() if n not in trainable and p.grad is not None]
    assert not frozen, frozen[:3]
