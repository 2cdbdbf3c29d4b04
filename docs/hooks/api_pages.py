"""mkdocs hook: the API reference pages, generated from the module list in ``mkdocs.yml``.

Every nav entry ``api/<module>.md`` that has no file becomes a page for ``<module>``: its docstring,
then each of its public names (``__all__``, or the functions, classes and constants the module
defines itself), rendered by mkdocstrings from the object's own module. A name already rendered on
an earlier page (a package re-exporting a submodule's class) gets a link to it instead, so every
object has one anchor. ``tests/docs/test_docs.py`` checks that every public name appears.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, Iterator

from mkdocs.structure.files import File, Files

API_PREFIX = "api/"


def api_modules(nav: Any) -> Iterator[str]:
    """Module names of the ``api/<module>.md`` entries of a nav (nested lists and dicts)."""
    if isinstance(nav, dict):
        for value in nav.values():
            yield from api_modules(value)
    elif isinstance(nav, list):
        for item in nav:
            yield from api_modules(item)
    elif isinstance(nav, str) and nav.startswith(API_PREFIX) and nav.endswith(".md"):
        yield nav[len(API_PREFIX):-3]


def _defined_names(module: Any) -> list[str]:
    """Public top-level functions, classes and assignments in the module's own source."""
    tree = ast.parse(Path(inspect.getfile(module)).read_text(encoding="utf-8"))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names.extend(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in dict.fromkeys(names) if not n.startswith("_")]


def public_names(module_name: str) -> list[str]:
    """The public names of a module: ``__all__`` if it has one, else what it defines itself."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    return list(names) if names is not None else _defined_names(module)


def canonical_path(module_name: str, name: str) -> str:
    """Where ``module.name`` is defined: ``defining.module.Qualname`` (the anchor mkdocstrings gives it)."""
    obj = getattr(importlib.import_module(module_name), name)
    owner = getattr(obj, "__module__", None)
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and owner and owner.startswith("clicksam"):
        return f"{owner}.{obj.__qualname__}"
    module = importlib.import_module(module_name)
    if name in _defined_names(module):
        return f"{module_name}.{name}"
    for candidate in sorted(n for n in list(sys.modules) if n.startswith(module_name + ".")):
        sub = importlib.import_module(candidate)
        if getattr(sub, name, None) is obj and name in _defined_names(sub):
            return f"{candidate}.{name}"
    return f"{module_name}.{name}"


def plan(modules: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Per module, its (name, canonical path) pairs."""
    return {m: [(n, canonical_path(m, n)) for n in public_names(m)] for m in modules}


def homes(entries: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    """The page each object is rendered on: its defining module's page when that is documented,
    else the first page that lists it."""
    home: dict[str, str] = {}
    for module_name, pairs in entries.items():
        for _, path in pairs:
            owner = path.rsplit(".", 1)[0]
            while owner not in entries and "." in owner:  # a method's class path: look for its module
                owner = owner.rsplit(".", 1)[0]
            listed = owner in entries and any(p == path for _, p in entries[owner])
            home.setdefault(path, owner if listed else module_name)
    return home


def page(module_name: str, pairs: list[tuple[str, str]], home: dict[str, str]) -> str:
    lines = [f"# `{module_name}`", "", f"::: {module_name}", "    options:", "      members: false",
             "      show_root_heading: false", "      show_root_toc_entry: false", ""]
    links = []
    for name, path in pairs:
        if home[path] != module_name:
            links.append(f"| `{name}` | [`{path}`][{path}] |")
            continue
        lines += [f"::: {path}", "    options:", "      show_root_heading: true", "      heading_level: 2", ""]
    if links:
        lines += ["## Also exported here", "", "| name | documented as |", "|---|---|", *links, ""]
    return "\n".join(lines)


def on_files(files: Files, config: Any) -> Files:
    entries = plan(list(api_modules(config["nav"])))
    home = homes(entries)
    for module_name, pairs in entries.items():
        uri = f"{API_PREFIX}{module_name}.md"
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, content=page(module_name, pairs, home)))
    return files
