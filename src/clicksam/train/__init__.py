"""Training: data readers, synthetic scenes, the embedding store, prompt simulation, losses and
the shared trainer that every method plugs into.

Modules (nothing heavy is imported here):
    readers / data / synthetic  training objects, resized to SAM's frame, deterministic per sample
    store                       precomputed SAM embeddings (``clicksam embed --dataset``)
    prompts / distance          batched click, multi-point and box simulation (SPEC §3, §7.3)
    losses                      NFL, weighted NFL, BCE, Dice, soft IoU, IoU-head MSE, click-point loss
    method                      the ``TrainMethod`` interface and registry (read its docstring to add one)
    decoder                     method ``decoder``: SAM mask-decoder fine-tuning (FocSAM stage 1)
    trainer / run_files / config / cli   the loop, its files, its configuration, ``clicksam train``
"""
