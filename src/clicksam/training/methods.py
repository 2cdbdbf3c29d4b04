"""The training methods by name: what ``clicksam train --method NAME`` and ``TrainConfig.method``
refer to.

A name is found, in this order, among the training methods of this package that are no method
stage (``decoder``), the methods whose spec names a ``training`` class (:mod:`clicksam.methods`),
and the classes registered with :func:`clicksam.train.method.register_method`.
"""
from __future__ import annotations

import importlib

from clicksam.train.method import METHODS, TrainMethod

# Training methods that are not a method stage: name -> "module:Class".
METHOD_MODULES: dict[str, str] = {
    "decoder": "clicksam.train.decoder:DecoderTraining",
}


def training_method_names() -> list[str]:
    """``decoder`` and the registered methods that have a training method (light: no torch model code)."""
    from clicksam.methods import training_methods

    return list(dict.fromkeys([*METHOD_MODULES, *training_methods()]))


def get_method(name: str) -> type[TrainMethod]:
    """The training method class called ``name`` (importing its module if needed)."""
    from clicksam.methods import training_methods

    reference = METHOD_MODULES.get(name) or training_methods().get(name)
    if name not in METHODS and reference is not None:
        if not isinstance(reference, str):
            METHODS.setdefault(name, reference)
            return METHODS[name]
        module_name, _, class_name = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not exc.name or not module_name.startswith(exc.name):
                raise  # the method's module exists but one of its own imports is missing
            raise ValueError(f"training method '{name}' is not available in this build ({module_name} is missing)") from exc
        cls = getattr(module, class_name, None)
        if cls is None:
            raise ValueError(f"training method '{name}': {module_name} defines no {class_name}")
        METHODS.setdefault(name, cls)
    if name not in METHODS:
        raise ValueError(f"unknown training method {name!r}; known: {sorted({*training_method_names(), *METHODS})}")
    return METHODS[name]
