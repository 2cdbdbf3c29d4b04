"""The ``clicksam`` command line.

Each sub-command lives in its own module that exposes ``add_arguments(parser)`` and
``run(args) -> int``; this file only lists them, so a sub-command's heavy imports happen
only when it runs.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings
from typing import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("clicksam.commands.models", "list the registered models and their weights"),
    "download": ("clicksam.commands.download", "download and verify an official checkpoint"),
    "segment": ("clicksam.commands.segment", "segment one image from clicks and/or a box"),
    "embed": ("clicksam.commands.embed", "precompute image embeddings (resumable)"),
    "demo": ("clicksam.commands.demo", "segment the example photos and write a gallery"),
    "eval": ("clicksam.eval.cli", "run the click-based or prompt-robustness evaluation"),
    "eval-report": ("clicksam.eval.report_cli", "combine several evaluation runs into one table and plot"),
    "train": ("clicksam.commands.train", "train a method stage or SAM's decoder"),
    "export-onnx": ("clicksam.onnx.cli", "export the prompt encoder + decoder to ONNX"),
    "serve": ("clicksam.server.cli", "run the web annotator"),
    "export": ("clicksam.server.export_cli", "export saved annotations (coco, png, polygons)"),
    "label-studio": ("clicksam.labelstudio.cli", "run as a Label Studio ML backend (keypoints/boxes -> brush masks)"),
}


def build_parser() -> argparse.ArgumentParser:
    from clicksam.methods import list_methods

    parser = argparse.ArgumentParser(
        prog="clicksam",
        description=f"Interactive segmentation with SAM and its methods: {', '.join(list_methods())}.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not exc.name or not exc.name.startswith("clicksam"):
                raise
            continue  # a sub-command whose module is not part of this build
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


# Options whose value is a comma-separated list of numbers, which may start with a minus sign.
NUMBER_LIST_OPTIONS = ("--click", "--box")
_NUMBER_LIST = re.compile(r"^-\.?\d[\d.eE+-]*(,\s*-?[\d.eE+-]*)*$")


def join_number_lists(argv: Sequence[str]) -> list[str]:
    """``--click -10,-20`` as ``--click=-10,-20``: argparse would take ``-10,-20`` for an option."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        if args[i] in NUMBER_LIST_OPTIONS and i + 1 < len(args) and _NUMBER_LIST.match(args[i + 1]):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' signature
    """Warnings on the command line: ``warning: message`` (no file, line number or source line)."""
    return f"warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_number_lists(sys.argv[1:] if argv is None else argv))
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    previous_format = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        return int(args._run(args) or 0)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"clicksam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
