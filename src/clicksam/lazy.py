"""Deferred imports shared by the registries: ``"module:attribute"`` references resolved on first
use, and module ``__getattr__`` tables for packages whose public names load on demand (so that
listing models or methods imports no model code, and no torch)."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Union

# a callable or class, or a "module:attribute" string naming one
Lazy = Union[str, Callable[..., Any], type]

_resolved: dict[str, Any] = {}


def resolve(value: Lazy) -> Any:
    """``value`` itself, or the object a ``"module:attribute"`` string names (imported once)."""
    if not isinstance(value, str):
        return value
    if value not in _resolved:
        module_name, _, attribute = value.partition(":")
        if not attribute:
            raise ValueError(f"{value!r} is not a 'module:attribute' reference")
        _resolved[value] = getattr(importlib.import_module(module_name), attribute)
    return _resolved[value]


def lazy_exports(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: public name -> the module defining it, imported
    on first use."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
