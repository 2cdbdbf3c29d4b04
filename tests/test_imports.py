"""Every module of the package imports, and no two modules import each other, even through a chain.

The import graph is read from the source (``ast``), function-level imports included: a cycle that
only closes inside a function still ties two layers together. Importing a package's own parent
(``clicksam.methods.focsam.stage`` -> ``clicksam.methods``) is not an edge: Python imports parents
first anyway.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SOURCE / "clicksam").rglob("*.py")):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports (the target and its packages below ``clicksam``)."""

    def targets(name: str) -> set[str]:
        parts = name.split(".")
        return {".".join(parts[:i]) for i in range(2, len(parts) + 1) if ".".join(parts[:i]) in known}

    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges.update(t for alias in node.names for t in targets(alias.name))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                edges.update(targets(name))
                edges.update(f"{name}.{alias.name}" for alias in node.names if f"{name}.{alias.name}" in known)
        graph[module] = {t for t in edges if t != module and not (module + ".").startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules (first == last), or []."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return []


def test_no_import_cycle_between_modules():
    graph = import_graph(modules())
    assert graph["clicksam.pipeline"] >= {"clicksam.interaction", "clicksam.methods"}  # the reader sees edges
    cycle = find_cycle(graph)
    assert not cycle, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_every_module_imports():
    failed = []
    for name in modules():
        if name.endswith(".__main__"):
            continue  # runs the command line
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "clicksam":
                failed.append(f"{name}: {exc}")
            # an optional third-party package of an extra that this environment lacks is fine
        except Exception as exc:  # noqa: BLE001
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not failed, failed


def _command_layer(module: str) -> bool:
    """The command layer: the CLI, its sub-command handlers and the apps."""
    last = module.rsplit(".", 1)[-1]
    return (module in ("clicksam.cli", "clicksam.__main__")
            or module.startswith(("clicksam.commands", "clicksam.server", "clicksam.labelstudio"))
            or last == "cli" or last.endswith("_cli"))


def test_no_library_module_imports_the_command_layer():
    graph = import_graph(modules())
    wrong = sorted(f"{m} -> {t}" for m, targets in graph.items() if not _command_layer(m)
                   for t in targets if _command_layer(t))
    assert not wrong, wrong


def test_the_training_library_sits_below_build():
    """``clicksam.train`` (data, store, prompts, losses, the TrainMethod interface) imports neither
    the runner (``clicksam.training``) nor anything built on models (build, methods, engine, eval)."""
    above = ("clicksam.training", "clicksam.build", "clicksam.checkpoint", "clicksam.methods", "clicksam.pipeline",
             "clicksam.session", "clicksam.predictor", "clicksam.eval", "clicksam.onnx")
    graph = import_graph(modules())
    wrong = sorted(f"{m} -> {t}" for m, targets in graph.items() if m.startswith("clicksam.train.") or m == "clicksam.train"
                   for t in targets if t.startswith(above))
    assert not wrong, wrong
    assert graph["clicksam.training.trainer"] >= {"clicksam.train.method", "clicksam.build"}  # the runner sits above
