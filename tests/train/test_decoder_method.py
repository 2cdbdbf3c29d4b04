"""The ``decoder`` method (FocSAM's stage 1) on a model whose frame is not 1024."""
from __future__ import annotations

import dataclasses

import torch

from clicksam.build import sam_from_config
from clicksam.registry import get_config
from clicksam.train.decoder import DecoderTraining
from clicksam.train.method import Batch
from clicksam.train.prompts import SampleRandom


def test_a_small_frame_gets_its_clicks_rescaled_and_its_own_logit_grid():
    torch.manual_seed(0)
    config = dataclasses.replace(get_config("tiny"), image_size=256, window_size=8, patch_size=16)
    model = sam_from_config(config).eval()
    grid = model.prompt_encoder.image_embedding_size[0]  # 16 → low-res logits 64×64
    target = torch.zeros(2, 1, 256, 256, dtype=torch.int8)
    target[0, 0, 40:120, 60:200] = 1
    target[1, 0, 150:230, 20:90] = 1
    seen = []
    decode = model.decode

    def recording_decode(embedding, points=None, **kwargs):
        seen.append(points[0].detach().clone())
        return decode(embedding, points=points, **kwargs)

    model.decode = recording_decode
    method = DecoderTraining(model, {"max_clicks": 4})
    method.prepare()
    batch = Batch(embedding=torch.randn(2, 256, grid, grid), target=target,
                  input_size=torch.tensor([[256, 256]] * 2), rng=SampleRandom([1, 2]), step=0)
    out = method.compute_loss(batch)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    coords = torch.cat([c.reshape(-1, 2) for c in seen])
    assert coords.min() >= -0.5 and coords.max() <= 255.5  # pixel centres of the 256 frame, not 1024
    # a click is the centre 4r + 1.5 of a 4-pixel block of the 1024 frame (one cell of the 256
    # click grid); rescaled it is exactly pixel r of the 256 frame (unscaled it would end in .5)
    assert torch.equal(coords, coords.round())
    assert model.mask_decoder.output_upscaling[0].weight.grad is not None
