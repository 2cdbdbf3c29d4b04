"""RTS: ``clicksam train --method stable-sam`` (StableSamTraining)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from clicksam.methods.stable_sam.training import CLEAN_BOX, NOISY_BOX, POINTS, StableSamTraining
from clicksam.train.method import Batch
from clicksam.training.methods import get_method
from clicksam.train.prompts import SampleRandom
from clicksam.train.synthetic import make_scene
from clicksam.transforms import ResizeLongestSide
from tests.methods.test_stable_sam import make_model

FRAME = 256


def scene_batch(indices, seeds, frame: int = FRAME) -> Batch:
    """Synthetic objects in a ``frame`` frame and random embeddings (the plugin does not care)."""
    transform = ResizeLongestSide(frame)
    targets = torch.full((len(indices), 1, frame, frame), -1, dtype=torch.int8)
    sizes = []
    for k, i in enumerate(indices):
        scene = make_scene(0, i)
        h, w = transform.apply_image(scene.image).shape[:2]
        mask = cv2.resize(scene.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        targets[k, 0, :h, :w] = torch.from_numpy(mask.astype(np.int8))
        sizes.append((h, w))
    embedding = torch.stack([torch.randn(256, frame // 16, frame // 16, generator=torch.Generator().manual_seed(i))
                             for i in indices])
    return Batch(embedding=embedding, target=targets, input_size=torch.tensor(sizes), rng=SampleRandom(seeds), step=0)


@pytest.fixture(scope="module")
def method() -> StableSamTraining:
    m = get_method("stable-sam")(make_model(FRAME))
    m.prepare()
    return m


def test_registered_and_freezes_everything_but_the_plugin(method):
    assert get_method("stable-sam") is StableSamTraining
    trainable = [n for n, _ in method.trainable_parameters()]
    assert trainable and all(n.startswith("stable_sam.") for n in trainable)
    assert sum(p.numel() for _, p in method.trainable_parameters()) == 81_828


def test_prompt_mix_and_frames(method):
    batch = scene_batch(list(range(12)), list(range(100, 112)))
    prompts = method.draw_prompts(batch)
    kinds = set(prompts["kind"].tolist())
    assert kinds == {CLEAN_BOX, NOISY_BOX, POINTS}
    clean, noisy = prompts["clean"], prompts["noisy"]
    assert (clean >= 0).all() and (clean <= FRAME).all() and (noisy[:, 2:] > noisy[:, :2]).all()
    assert not torch.allclose(clean, noisy)
    labels, coords = prompts["labels"], prompts["coords"]
    counts = (labels == 1).sum(1)
    assert counts.min() >= 1 and counts.max() <= 5 and labels.shape[1] == 5
    # every valid point lies on the object, in the model's frame
    target = batch.target
    for b in range(12):
        for (x, y), label in zip(coords[b].tolist(), labels[b].tolist()):
            if label == 1:
                assert target[b, 0, int(round(y)), int(round(x))] == 1


def test_loss_trains_only_the_plugin(method):
    method.train_mode()
    method.model.zero_grad(set_to_none=True)
    out = method.compute_loss(scene_batch([0, 1, 2, 3, 4, 5], [7, 8, 9, 10, 11, 12]))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert set(out.metrics) == {"bce", "dice", "iou", "alpha1"}
    torch.testing.assert_close(out.metrics["alpha1"], torch.tensor(0.01))
    out.loss.backward()
    grads = {n: p.grad for n, p in method.model.named_parameters()}
    assert all(g is None for n, g in grads.items() if not n.startswith("stable_sam."))
    assert grads["stable_sam.dsp.offset_out.weight"].abs().max() > 0
    method.model.zero_grad(set_to_none=True)


def test_a_sample_loss_does_not_depend_on_its_batch(method):
    """The trainer's rule: the batch loss is the mean of per-sample losses computed alone."""
    together = method.compute_loss(scene_batch([3, 4, 5], [21, 22, 23])).loss
    alone = [method.compute_loss(scene_batch([i], [s])).loss for i, s in [(3, 21), (4, 22), (5, 23)]]
    torch.testing.assert_close(together, torch.stack(alone).mean(), atol=1e-5, rtol=1e-5)


def test_bad_options_are_refused():
    model = make_model(FRAME)
    with pytest.raises(ValueError, match="box_noise"):
        StableSamTraining(model, {"box_noise": 1.5})
    with pytest.raises(ValueError, match="min_points"):
        StableSamTraining(model, {"min_points": 4, "max_points": 2})
    with pytest.raises(ValueError, match="no option"):
        StableSamTraining(model, {"noise": 0.1})
    from clicksam.build import sam_from_config
    from clicksam.registry import get_config

    with pytest.raises(ValueError, match="stable_sam"):
        StableSamTraining(sam_from_config(get_config("tiny")))


@pytest.mark.slow
def test_trainer_writes_a_method_file_that_loads(tmp_path):
    from clicksam import build_sam
    from clicksam.checkpoint import read_method_file
    from clicksam.training.config import config_from_dict
    from clicksam.training.trainer import Trainer

    config = config_from_dict({
        "method": "stable-sam", "model": "tiny", "steps": 2, "batch_size": 2, "out_dir": str(tmp_path / "run"),
        "device": "cpu", "amp": "off", "log_every": 1, "checkpoint_every": 2,
        "data": {"datasets": [{"type": "synthetic", "count": 8, "seed": 0}], "num_workers": 0},
        "optim": {"lr": 1e-3, "warmup_steps": 0},
    })
    trainer = Trainer(config, progress=False)
    result = trainer.run()
    assert result.step == 2 and result.method_file is not None
    tensors, meta = read_method_file(result.method_file)
    assert meta["methods"] == ["stable-sam"] and all(k.startswith("stable_sam.") for k in tensors)
    assert len(tensors) == len(trainer.method.plugin.state_dict())
    loaded = build_sam("tiny", checkpoint=[result.method_file])
    assert loaded.stable_sam.clicksam_trained
    moved = [k for k, v in tensors.items() if not torch.equal(v, make_model().stable_sam.state_dict()[k.split(".", 1)[1]])]
    assert moved  # two optimiser steps changed the plugin
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert "alpha1" in json.loads(lines[-1])
