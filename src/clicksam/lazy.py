"""Deferred imports shared by the registries: ``"module:attribute"`` references resolved on first
use, and module ``__getattr__`` tables for packages whose public names load on demand (so that
listing models or methods imports no model code, and no torch)."""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import Any, Callable, Iterator, Union

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


def subpackages(package: str) -> Iterator[str]:
    """The full names of ``package``'s sub-packages, in name order (the plug-ins a registry loads).
    Finding them imports ``package``'s parent only, not ``package`` itself."""
    spec = importlib.util.find_spec(package)
    locations = (spec.submodule_search_locations or []) if spec is not None else []
    for info in sorted(pkgutil.iter_modules(locations), key=lambda m: m.name):
        if info.ispkg:
            yield f"{package}.{info.name}"
