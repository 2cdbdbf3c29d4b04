"""The documentation site builds with warnings as errors, and every public name is in it.

"Every public name": ``clicksam.__all__`` and the public names of each module in the API section
of ``mkdocs.yml`` (``__all__``, or what the module defines itself; docs/hooks/api_pages.py). A
module added to the package's public surface but not to the reference, or a name whose docstring
page breaks, fails here.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _hook():
    spec = importlib.util.spec_from_file_location("api_pages", ROOT / "docs" / "hooks" / "api_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nav_modules() -> list[str]:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *a: None)  # mkdocs.yml may use python tags
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    return list(_hook().api_modules(config["nav"]))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, f"mkdocs build --strict failed (is the [docs] extra installed?):\n{done.stderr[-4000:]}"
    return out


@pytest.mark.slow
def test_every_public_name_is_documented(site):
    import clicksam

    hook = _hook()
    modules = _nav_modules()
    assert "clicksam" in modules
    assert hook.public_names("clicksam") == list(clicksam.__all__)
    entries = hook.plan(modules)
    home = hook.homes(entries)
    missing = []
    for module_name, pairs in entries.items():
        listing = (site / "api" / module_name / "index.html").read_text(encoding="utf-8")
        for name, path in pairs:
            rendered = (site / "api" / home[path] / "index.html").read_text(encoding="utf-8")
            if f'id="{path}"' not in rendered:
                missing.append(f"{module_name}.{name} (as {path}) not rendered on api/{home[path]}")
            elif home[path] != module_name and f"#{path}" not in listing:
                missing.append(f"{module_name}.{name} not linked from api/{module_name}")
    assert not missing, "\n".join(missing)


@pytest.mark.slow
def test_guides_are_in_the_site(site):
    for page in ("methods/stable-sam", "methods/focsam", "methods/sam-ref", "training", "reproduce"):
        html = (site / page / "index.html").read_text(encoding="utf-8")
        assert "clicksam" in html
    assert "recipe_cost_" in (site / "training" / "index.html").read_text(encoding="utf-8")


def test_api_module_list_covers_the_packages_public_modules():
    """The reference lists the modules users import; each listed one imports."""
    modules = _nav_modules()
    for name in modules:
        importlib.import_module(name)
    for wanted in ("clicksam", "clicksam.build", "clicksam.predictor", "clicksam.session", "clicksam.methods",
                   "clicksam.eval", "clicksam.training.config", "clicksam.training.trainer"):
        assert wanted in modules


def test_readme_and_docs_relative_links_exist():
    """Links from README.md into the repository (the site's own links are checked by the strict build)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?:|#|mailto:)([^)#\s]+)", text)
    assert targets, "README.md links to no file"
    broken = [t for t in targets if not (ROOT / t).exists()]
    assert not broken, f"README.md links to missing files: {broken}"
