"""The experiments are callers of the library (issue 15 item 7): they train through
``clicksam.training.Trainer`` and evaluate through ``clicksam.eval``'s loop, never through the
command layer, and hold no optimiser loop of their own."""
from __future__ import annotations

import ast
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
COMMAND_LAYER = ("clicksam.cli", "clicksam.commands", "clicksam.server", "clicksam.labelstudio")


def _imports(path: Path) -> set[str]:
    """Every module a script imports, function-level imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_experiments_use_the_library_not_the_commands():
    scripts = sorted(EXPERIMENTS.glob("*.py"))
    assert len(scripts) >= 10
    imported = {path.name: _imports(path) for path in scripts}
    wrong = sorted(f"{name} -> {module}" for name, modules in imported.items() for module in modules
                   if module.startswith(COMMAND_LAYER) or module.rsplit(".", 1)[-1] == "cli")
    assert not wrong, wrong
    assert "clicksam.training.trainer.Trainer" in imported["runs.py"]
    assert "clicksam.eval.loop.evaluate_clicks" in imported["evaluation.py"]
    assert "clicksam.train.method.TrainMethod" in imported["scratch.py"]


def test_no_experiment_steps_an_optimiser_itself():
    """The one training loop is the ``Trainer``'s."""
    for path in sorted(EXPERIMENTS.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "torch.optim" not in text and ".backward(" not in text, path.name
