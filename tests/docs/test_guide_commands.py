"""Every ``clicksam`` command written in the guides and the README parses, and the ``segment`` and
``eval`` ones run.

The commands name real SAM sizes and files (``--model vit_h``, ``~/.cache/clicksam/sam_vit_h_4b8939.pth``,
the authors' ``iter_160000.pth``, ``runs/<recipe>/method.safetensors``). To run them here they are
rewritten for the ``tiny`` test model: ``--model tiny``, the official SAM files dropped, the FocSAM
file replaced by a tiny FocSAM method file, each ``runs/...`` method file made for ``tiny`` with the
stages its name says; ``eval`` gets ``--limit 1 --max-clicks 2 --num-prompts 2``. ``serve``,
``train``, ``embed`` and ``download`` are only parsed here (the recipe tests run train and embed).
"""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from clicksam.cli import build_parser, main

from ..recipes.layouts import build_workspace

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL_SAM_FILES = {"sam_vit_b_01ec64.pth", "sam_vit_l_0b3195.pth", "sam_vit_h_4b8939.pth"}
FOCSAM_STAND_IN = "runs/focsam_vit_h_stage2/method.safetensors"


def guide_commands() -> list[tuple[str, list[str]]]:
    """(where, argv without 'clicksam') of every clicksam command in a bash block of the docs/README."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                argv = shlex.split(line, comments=True)
                if argv and argv[0] == "clicksam":
                    found.append((f"{path.relative_to(ROOT)}: {line.strip()[:80]}", argv[1:]))
    return found


COMMANDS = guide_commands()


def test_the_guides_have_commands():
    verbs = {argv[0] for _, argv in COMMANDS}
    assert {"segment", "serve", "eval", "train", "embed", "download"} <= verbs


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_guide_command_parses(where, argv):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"{where}: argparse refused it (exit {exc.code})")
    assert getattr(args, "_run", None) is not None


def _stages_for(run_name: str) -> tuple[list[str], list[str]]:
    """(stages, saved prefixes) of a tiny method file standing in for runs/<run_name>/."""
    if "stable_sam" in run_name:
        return ["stable-sam"], ["stable_sam."]
    if "stage2" in run_name:
        return ["focsam"], ["focus_refiner.", "mask_decoder."]
    if "stage1" in run_name:
        return [], ["mask_decoder."]
    if "sam_ref" in run_name:
        return ["sam-ref"], ["sam_ref."]
    raise AssertionError(f"no stand-in rule for runs/{run_name}")


def _tiny_method_file(path: Path) -> None:
    from clicksam.checkpoint import save_method_file
    from clicksam.training.trainer import build_base_model

    stages, prefixes = _stages_for(path.parent.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_method_file(path, build_base_model("tiny", methods=stages), prefixes, stages)


def for_tiny(argv: list[str]) -> list[str]:
    """The command rewritten for the tiny model (see the module docstring)."""
    out: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--model":
            out += ["--model", "tiny"]
            next(items)
        elif item == "--checkpoint":
            path = next(items)
            name = Path(path).name
            if name in OFFICIAL_SAM_FILES:
                continue
            out += ["--checkpoint", FOCSAM_STAND_IN if name == "iter_160000.pth" else path]
        elif item == "--device":
            out += ["--device", "cpu"]
            next(items)
        else:
            out.append(item)
    if argv[0] == "eval":
        out += ["--limit", "1", "--max-clicks", "2", "--num-prompts", "2", "--no-progress"]
    return out


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else ""


def runnable(commands: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """The segment/eval/models commands to run: the first of each (verb, method, protocol,
    datasets), since the rest differ only in file names and clicks (they are parsed above)."""
    chosen, seen = [], set()
    for where, argv in commands:
        if argv[0] not in ("segment", "eval", "models") or any("$" in a for a in argv):
            continue
        datasets = tuple(argv[argv.index("--dataset") + 1:][:4]) if "--dataset" in argv else ()
        key = (argv[0], _option(argv, "--method"), _option(argv, "--protocol"), datasets)
        if key not in seen:
            seen.add(key)
            chosen.append((where, argv))
    return chosen


RUNNABLE = runnable(COMMANDS)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, shared_dir) -> Path:
    root = build_workspace(tmp_path_factory.mktemp("guide"))
    data = root / "data"
    for name in ("GrabCut", "Berkeley", "DAVIS"):
        (data / name).symlink_to(shared_dir / "data" / name, target_is_directory=True)
    (data / "SBD").symlink_to(Path("sbd/benchmark_RELEASE/dataset"), target_is_directory=True)  # as reproduce.md says
    shutil.copy(ROOT / "src" / "clicksam" / "examples" / "coffee.jpg", root / "photo.jpg")
    runs = {p for _, argv in RUNNABLE for p in argv if p.startswith("runs/") and p.endswith(".safetensors")}
    for run in sorted(runs | {FOCSAM_STAND_IN}):
        _tiny_method_file(root / run)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("where,argv", RUNNABLE, ids=[w for w, _ in RUNNABLE])
def test_guide_command_runs_on_tiny(workspace, monkeypatch, where, argv):
    monkeypatch.chdir(workspace)
    assert main(for_tiny(argv)) == 0, where
