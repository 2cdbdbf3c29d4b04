"""Training, the library part: what a training run is made of, below ``clicksam.build``.

Modules (nothing heavy is imported here):
    readers / data / synthetic  training objects, resized to SAM's frame, deterministic per sample
                                (``RenderedSynthetic``: synthetic scenes rendered once, held in memory)
    store                       precomputed image features (``clicksam embed --config``)
    prompts / distance          batched click, multi-point and box simulation (SPEC §3, §7.3)
    losses                      NFL, weighted NFL, BCE, Dice, soft IoU, IoU-head MSE, click-point loss
    method                      the ``TrainMethod`` interface (read its docstring to add a method)
    decoder                     method ``decoder``: SAM mask-decoder fine-tuning (FocSAM stage 1)

The runner that uses them (the ``Trainer``, its configuration and run files, the lookup of a
training method by name) is :mod:`clicksam.training`; the command is ``clicksam train``
(:mod:`clicksam.commands.train`). Nothing here imports either.
"""
