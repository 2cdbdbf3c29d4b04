"""Training: data readers, synthetic scenes, the embedding store, prompt simulation, losses and
the shared trainer that every method plugs into.

Modules (nothing heavy is imported here):
    readers / data / synthetic  training objects, resized to SAM's frame, deterministic per sample
    store                       precomputed SAM embeddings (``clicksam embed --config``)
    prompts / distance          batched click, multi-point and box simulation (SPEC §3, §7.3)
    losses                      NFL, weighted NFL, BCE, Dice, soft IoU, IoU-head MSE, click-point loss
    method                      the ``TrainMethod`` interface and registry (read its docstring to add one)
    decoder                     method ``decoder``: SAM mask-decoder fine-tuning (FocSAM stage 1)
    trainer / run_files / config / cli   the loop, its files, its configuration, ``clicksam train``

The training methods: ``decoder`` here, and each registered method whose spec names one
(``MethodSpec.training``, see :mod:`clicksam.methods`); :func:`training_method_names` lists them.
"""
from __future__ import annotations

# Training methods of this package that are not a method stage: name -> "module:Class".
METHOD_MODULES: dict[str, str] = {
    "decoder": "clicksam.train.decoder:DecoderTraining",
}


def training_method_names() -> list[str]:
    """``decoder`` and the registered methods that have a training method (light: no torch)."""
    from clicksam.methods import training_methods

    return list(dict.fromkeys([*METHOD_MODULES, *training_methods()]))

