"""``clicksam train --method NAME --config FILE`` (NAME: ``decoder`` or a registered method with training).

One process by default; ``torchrun --nproc_per_node N -m clicksam train ...`` runs
DistributedDataParallel (NCCL on GPUs, gloo on CPUs), with ``batch_size`` the global batch.
``--resume`` continues the run in the config's ``out_dir`` exactly where its checkpoint left it.
``--print-config`` writes a complete config to start from. ``--model``, ``--checkpoint``,
``--batch-size``, ``--steps``, ``--workers`` and ``--store`` override the config (the recipes in ``recipes/`` are tested with
``--model tiny --steps 2 --batch-size 2``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clicksam.commands.common import RANDOM_WEIGHTS_HELP
from clicksam.training.config import TrainConfig, config_from_dict, load_config, override_model

def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clicksam.training.methods import training_method_names

    parser.add_argument("--method", choices=training_method_names(), help="what to train (default: the config's 'method')")
    parser.add_argument("--config", type=Path, help="training config, .json or .toml (see --print-config)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the config's out_dir from its checkpoint")
    parser.add_argument("--out", type=Path, help="override the config's out_dir")
    parser.add_argument("--steps", type=int, help="override the config's number of steps")
    parser.add_argument("--batch-size", type=int, help="override the config's global batch size")
    parser.add_argument("--workers", type=int, help="override the config's data.num_workers (data-loader processes)")
    parser.add_argument("--store", help="override the config's data.store (embedding store folder)")
    parser.add_argument("--model", help="override the config's model (drops its checkpoint files unless --checkpoint is given)")
    parser.add_argument("--checkpoint", action="append", metavar="PATH",
                        help="override the config's checkpoint files; repeat: base SAM file first, then method files")
    parser.add_argument("--device", help="override the config's device (auto, cpu, cuda)")
    parser.add_argument("--random-weights", action="store_true", help=RANDOM_WEIGHTS_HELP + " (config: random_weights)")
    parser.add_argument("--print-config", action="store_true", help="print a complete default config for --method and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _config(args: argparse.Namespace) -> TrainConfig:
    if args.config is None:
        raise ValueError("--config FILE is required (start from `clicksam train --method decoder --print-config > train.json`)")
    config = load_config(args.config)
    raw = json.loads(args.config.read_text()) if args.config.suffix.lower() == ".json" else {}
    if args.method:
        if "method" in raw and raw["method"] != args.method:
            raise ValueError(f"--method {args.method} contradicts the config's method {raw['method']!r}")
        config.method = args.method
    if args.out is not None:
        config.out_dir = str(args.out)
    if args.steps is not None:
        config.steps = args.steps
    if args.batch_size is not None:
        config.batch_size = args.batch_size
    if args.workers is not None:
        config.data.num_workers = args.workers
    if args.store is not None:
        config.data.store = args.store
    note = override_model(config, args.model, args.checkpoint)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if args.device is not None:
        config.device = args.device
    if args.random_weights:
        config.random_weights = True
    return config.validate()


def default_config(method: str) -> TrainConfig:
    """A starting config for ``method``: FocSAM's optimiser settings on synthetic data."""
    from clicksam.training.methods import get_method

    options = dict(get_method(method).default_options)
    return config_from_dict({"method": method, "out_dir": f"runs/{method}", "options": options})


def run(args: argparse.Namespace) -> int:
    if args.print_config:
        if not args.method:
            raise ValueError("--print-config needs --method")
        json.dump(default_config(args.method).to_dict(), sys.stdout, indent=1)
        print()
        return 0
    from clicksam.commands.common import announce_weights, cli_weights_message, resolve_device
    from clicksam.training.trainer import Trainer

    config = _config(args)
    if config.device != "auto":
        resolve_device(config.device)
    with cli_weights_message():
        trainer = Trainer(config, resume=args.resume, progress=not args.no_progress)
    if trainer.rank == 0:
        announce_weights(trainer.model, config.model)
    result = trainer.run()
    if trainer.rank == 0:
        status = "stopped early (resumable)" if result.interrupted else "done"
        print(f"{status}: step {result.step}/{config.steps}, last loss {result.last_loss:.4f}, "
              f"{result.samples_per_s:.2f} samples/s, {100 * result.data_wait_fraction:.1f}% of step time waiting for data")
        if result.method_file is not None:
            print(f"trained weights: {result.method_file}")
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
