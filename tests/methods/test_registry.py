"""The method registry: discovery, the plug-in contract, and a method installed from outside.

The toy method lives only in this test: a module and a ``*.dist-info`` with an entry point in the
group ``clicksam.methods``, written to a temporary folder put on ``sys.path``, as an installed
package would be. It then has to work through the session, ``clicksam segment --method``,
``clicksam eval --method`` and the server's method menu, with no edit to clicksam.
"""
from __future__ import annotations

import ast
import json
import pkgutil
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import clicksam
from clicksam.cli import main
from clicksam.methods import (MethodSpec, Stage, canonical_method, get_spec, list_methods, method_help,
                              parse_method, register, registry, specs, unavailable_methods, unregister)

TOY = "toy-invert"
TOY_MODULE = "clicksam_toy_method"
TOY_SOURCE = '''
import dataclasses

from clicksam.methods import MethodSpec, Stage


class InvertStage(Stage):
    """Counts its steps in the step state and inverts SAM's mask (its final logits)."""

    def before_decode(self, ctx):
        ctx.state["toy.steps"] = ctx.state.get("toy.steps", 0) + 1

    def after_decode(self, ctx, result):
        return dataclasses.replace(result, final_logits=-result.frame_logits)


SPEC = MethodSpec(name="toy-invert", stage=InvertStage)
'''
ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "src" / "clicksam" / "examples" / "coffee.jpg"


def install(folder: Path, entry_points: str, files: dict[str, str]) -> None:
    """A minimal installed distribution in ``folder``: its modules and a dist-info."""
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    info = folder / "clicksam_toy_method-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clicksam-toy-method\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry that discovers again (and is thrown away after the test)."""
    monkeypatch.setattr(registry, "_REGISTRY", registry._Registry())
    yield
    for name in [m for m in sys.modules if m.startswith(TOY_MODULE)]:
        del sys.modules[name]


@pytest.fixture
def toy_installed(tmp_path, monkeypatch, fresh_registry):
    folder = tmp_path / "site"
    folder.mkdir()
    install(folder, f"[clicksam.methods]\n{TOY} = {TOY_MODULE}:SPEC\n", {f"{TOY_MODULE}.py": TOY_SOURCE})
    monkeypatch.syspath_prepend(str(folder))
    assert TOY in list_methods()
    return folder


# -- the registry -----------------------------------------------------------------------------
def test_built_in_methods_and_their_order():
    names = list_methods()
    assert {"stable-sam", "focsam", "sam-ref"} <= set(names)
    assert [s.name for s in specs()] == names
    assert parse_method("sam-ref+stable-sam+SAM") == [n for n in names if n in ("stable-sam", "sam-ref")]
    assert canonical_method([]) == "sam" and canonical_method(["sam-ref", "focsam"]) == "focsam+sam-ref"
    assert method_help().startswith("sam, ") and all(n in method_help() for n in names)
    with pytest.raises(ValueError, match="unknown method stage\\(s\\) nope .* use 'sam' or"):
        parse_method("nope+sam")
    with pytest.raises(ValueError, match="unknown method 'nope'; known methods"):
        get_spec("nope")


def test_listing_the_methods_imports_no_model_code():
    import subprocess

    code = ("import sys; from clicksam.methods import list_methods; names = list_methods(); "
            "print(len(names) >= 3, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]


def test_a_spec_needs_only_a_name_and_a_stage():
    spec = MethodSpec(name="toy-plain", stage=Stage)
    assert spec.attribute == "" and spec.families == ("sam",) and spec.onnx is None and spec.training is None
    for bad in ("", "sam", "A+B", "Upper"):
        with pytest.raises(ValueError, match="method name"):
            MethodSpec(name=bad, stage=Stage)
    with pytest.raises(ValueError, match="untrained must be"):
        MethodSpec(name="toy-x", stage=Stage, untrained="maybe")
    with pytest.raises(ValueError, match="no attach function"):
        MethodSpec(name="toy-x", stage=Stage, attribute="toy_x")


def test_register_and_unregister(fresh_registry, tiny_predictor):
    register(MethodSpec(name="toy-first", stage=Stage, order=1))
    assert list_methods()[0] == "toy-first"
    with pytest.raises(ValueError, match="already registered"):
        register(MethodSpec(name="toy-first", stage=Stage))
    with pytest.raises(ValueError, match="model attribute 'stable_sam'"):
        register(MethodSpec(name="toy-clash", stage=Stage, attribute="stable_sam", attach=lambda m: None))
    plain = clicksam.InteractiveSession(tiny_predictor, method="sam")
    with_toy = clicksam.InteractiveSession(tiny_predictor, method="toy-first+sam")
    np.testing.assert_array_equal(plain.add_click(300, 200), with_toy.add_click(300, 200))  # Stage does nothing
    unregister("toy-first")
    assert "toy-first" not in list_methods()


def test_a_method_for_another_family_is_refused(fresh_registry):
    register(MethodSpec(name="toy-sam2", stage=Stage, attribute="toy_x", attach=lambda model: None,
                        families=("sam2",)))
    with pytest.raises(ValueError, match="'toy-sam2' method applies to sam2 models, not to this sam model"):
        clicksam.build_sam("tiny", methods=["toy-sam2"])


def test_a_broken_entry_point_is_listed_as_unavailable(tmp_path, monkeypatch, fresh_registry):
    install(tmp_path, "[clicksam.methods]\ntoy-broken = clicksam_toy_method_missing:SPEC\n", {})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="toy-broken"):
        names = list_methods()
    assert "toy-broken" not in names and "stable-sam" in names
    assert "failed to load" in unavailable_methods()["toy-broken"]
    with pytest.raises(ValueError, match="'toy-broken' method is not available here"):
        parse_method("toy-broken")


def test_the_core_names_no_method():
    """Outside the method packages, no code (identifiers, imports, strings other than docstrings)
    names a registered method, its model attribute or its package."""
    packages = {info.name for info in pkgutil.iter_modules(clicksam.methods.__path__) if info.ispkg}
    words = packages | {value for spec in specs() for value in (spec.name, spec.attribute) if value}
    pattern = re.compile("|".join("[-_ ]?".join(map(re.escape, re.split("[-_]", w))) for w in sorted(words)), re.I)
    source = ROOT / "src" / "clicksam"
    offenders = []
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source).as_posix()
        if any(relative.startswith(f"methods/{p}/") for p in packages):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        found = [getattr(n, a) for n in ast.walk(tree) for a in ("id", "attr", "arg", "module")
                 if isinstance(getattr(n, a, None), str)]
        found += [n.value for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]
        hits = sorted({w for w in found if pattern.search(w)})
        if hits:
            offenders.append(f"{relative}: {hits[:3]}")
    assert not offenders, offenders


# -- a method from another package --------------------------------------------------------------
def test_an_installed_method_works_in_the_session(toy_installed, tiny_predictor):
    assert get_spec(TOY).name == TOY and TOY in method_help()
    plain = clicksam.InteractiveSession(tiny_predictor, method="sam")
    toy = clicksam.InteractiveSession(tiny_predictor, method=f"sam+{TOY}")
    assert toy.method == TOY
    for x, y, positive in [(300, 200, True), (100, 80, False)]:
        np.testing.assert_array_equal(toy.add_click(x, y, positive), ~plain.add_click(x, y, positive))
        np.testing.assert_array_equal(toy.logits, -plain.logits)
    assert toy.result.state["toy.steps"] == 2
    toy.undo()
    assert toy.result.state["toy.steps"] == 1  # its state travels with the step
    assert canonical_method([TOY, "sam-ref", "stable-sam"]) == f"stable-sam+sam-ref+{TOY}"  # after the built-ins


def test_an_installed_method_works_in_clicksam_segment(toy_installed, tmp_path, capsys):
    masks = {}
    for method in ("sam", TOY):
        out = tmp_path / f"{method}.png"
        assert main(["segment", str(PHOTO), "--model", "tiny", "--method", method, "--click", "300,200",
                     "-o", str(out)]) == 0
        masks[method] = np.array(Image.open(out)) > 0
    np.testing.assert_array_equal(masks[TOY], ~masks["sam"])
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    assert TOY in capsys.readouterr().out  # the help text lists it


def test_an_installed_method_works_in_clicksam_eval(toy_installed, tmp_path):
    from tests.eval.conftest import write_square_dataset

    images, masks = write_square_dataset(tmp_path / "squares")
    for method in ("sam", TOY):
        assert main(["eval", "--images", str(images), "--masks", str(masks), "--name", "squares",
                     "--model", "tiny", "--method", method, "--max-clicks", "2", "--out", str(tmp_path / method),
                     "--no-progress"]) == 0
    summaries = {m: json.loads((tmp_path / m / "summary.json").read_text()) for m in ("sam", TOY)}
    assert summaries[TOY]["config"]["segmenter"]["method"] == TOY
    first = {m: summaries[m]["datasets"]["squares"]["miou"][0] for m in summaries}
    assert first[TOY] != first["sam"]  # the inverted masks score differently


def test_an_installed_method_is_offered_by_the_server(toy_installed, tmp_path):
    from fastapi.testclient import TestClient

    from clicksam.server.cli import build_app
    from tests.server.conftest import write_images

    write_images(tmp_path / "images")
    with TestClient(build_app(tmp_path / "images", model="tiny", methods=[TOY])) as client:
        info = client.get("/api/info").json()
        offered = {m["name"]: m for m in info["methods"]}
        assert offered[TOY]["available"] and f"stable-sam+{TOY}" in offered
        obj = client.post("/api/objects", json={"image": "img0.png"}).json()
        assert obj["method"] == TOY
        clicked = client.post("/api/click", json={"image": "img0.png", "object": obj["id"], "x": 40, "y": 30})
        assert clicked.status_code == 200
