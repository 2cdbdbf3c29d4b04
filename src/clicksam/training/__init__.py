"""Training, the runner: one training run from a configuration, above ``clicksam.build``.

Modules (nothing heavy is imported here):
    config      ``TrainConfig`` (a JSON/TOML file mapped onto dataclasses)
    methods     the training methods by name: ``decoder`` and every method spec's ``training``
    trainer     ``Trainer``: the loop (one process or DDP), step and time budgets, resumption
    run_files   the run's checkpoint, metrics log and loss curve

What a run is made of (data, embedding store, prompt simulation, losses, the ``TrainMethod``
interface) is the library :mod:`clicksam.train`; the command ``clicksam train`` is
:mod:`clicksam.commands.train`.
"""
