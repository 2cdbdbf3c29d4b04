"""The model registry: families register themselves (configs, builder, loader); build_sam and the
checkpoint loader name no family; listing the models imports no torch."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import clicksam
from clicksam import registry
from clicksam.registry import ModelFamily, family_configs, get_family, list_families, list_models

SOURCE = Path(__file__).resolve().parents[1] / "src" / "clicksam"
# the test config of each built-in family
TEST_CONFIGS = {"sam": "tiny", "sam2": "sam2_tiny", "hq-sam": "hq_tiny"}


def test_every_family_lists_its_sizes_and_test_configs():
    assert list_families() == ["sam", "hq-sam", "sam2"]
    assert list_models(family="sam2", include_test=False) == [
        "sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l"]
    assert list_models(family="hq-sam", include_test=False) == ["hq_vit_h", "hq_vit_l", "hq_vit_b", "hq_vit_tiny"]
    assert {"sam2_tiny", "hq_tiny", "hq_tinyvit_test"} <= set(list_models()) - set(list_models(include_test=False))
    for name in list_models():
        config = clicksam.get_config(name)
        assert config.family in list_families()
        assert config.has_official_weights == ("test" not in config.tags)
        if config.has_official_weights:
            assert config.weights.download_url.startswith("https://") and len(config.weights.sha256) == 64


@pytest.mark.parametrize("name", [n for n in list_models(include_test=False) if clicksam.get_config(n).family != "sam"])
def test_every_real_size_builds_its_family_model(name):
    with torch.device("meta"):  # no memory, no initialisation: the family's builder and class
        model = clicksam.build_sam(name, random_weights=True, device="meta")
    assert model.family == clicksam.get_config(name).family and model.model_name == name
    assert model.random_weights


@pytest.mark.parametrize("family,name", TEST_CONFIGS.items())
def test_test_configs_build_without_weights(family, name):
    model = clicksam.build_sam(name)
    assert model.family == family and model.random_weights and not model.training
    assert model.embedding_key == model.feature_names[0] == "embedding"


def test_listing_the_models_imports_no_torch():
    code = ("import sys; from clicksam.registry import list_models; names = list_models(); "
            "print('sam2.1_hiera_t' in names and 'hq_vit_b' in names, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]


def _code_words(path: Path) -> set[str]:
    """Every import, name, attribute and non-docstring string constant of a module's code."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    words: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.add(node.value)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            words.update(getattr(node, "module", None) or "" for _ in [0])
            words.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
    return words


def test_build_and_checkpoint_name_no_family():
    for module in ("build.py", "checkpoint.py"):
        words = _code_words(SOURCE / module)
        for word in ("sam2", "hq_sam", "hq-sam", "Sam2", "HQSam"):
            assert not [w for w in words if word in w], f"{module} names {word}"


def test_a_family_registered_at_run_time_builds_and_loads(monkeypatch, tmp_path):
    """A third-party family: its configs are listed, build_sam uses its builder, and base files go
    through its loader."""
    loaded = []

    def load(model, path, trust_checkpoint=False):
        loaded.append((model.model_name, Path(path).name, trust_checkpoint))

    @dataclasses.dataclass(frozen=True)
    class ToyConfig(registry.RegisteredConfig):
        name: str
        family: str = "toy"
        weights: object = None
        description: str = "a toy"
        image_size: int = 1024
        tags: tuple = ("test",)

    def build(config):
        model = clicksam.build_sam("tiny")
        model.model_name, model.family = config.name, "toy"
        return model

    monkeypatch.setattr(registry, "_REGISTRY", registry._Registry())
    registry.register_family(ModelFamily("toy", (ToyConfig("toy_small"),), build=build, load_official=load))
    assert "toy_small" in list_models() and family_configs("toy")[0].name == "toy_small"
    path = tmp_path / "toy.pth"
    path.write_bytes(b"anything: the family reads it")
    model = clicksam.build_sam("toy_small", checkpoint=path, trust_checkpoint=True)
    assert loaded == [("toy_small", "toy.pth", True)] and not model.random_weights
    with pytest.raises(ValueError, match="already registered"):
        registry.register_family(ModelFamily("toy", (ToyConfig("toy_small"),), build=build, load_official=load))
    with pytest.raises(ValueError, match="belong to another family"):
        ModelFamily("other", (ToyConfig("x"),), build=build, load_official=load)
    with pytest.raises(ValueError, match="unknown model family 'nope'; known: sam, "):
        get_family("nope")


def test_an_official_file_of_one_family_is_refused_by_another(tmp_path):
    """A SAM file given to HQ-SAM, and an HQ-SAM file given to SAM, fail with the file named."""
    sam_file, hq_file = tmp_path / "sam.pth", tmp_path / "hq.pth"
    torch.save(clicksam.build_sam("tiny").state_dict(), sam_file)
    torch.save(clicksam.build_sam("hq_tiny").state_dict(), hq_file)
    with pytest.raises(ValueError, match=r"sam\.pth: a hq-sam checkpoint of no registered size \(\d+ missing"):
        clicksam.build_sam("hq_tiny", checkpoint=sam_file)
    with pytest.raises(ValueError, match=r"hq\.pth: the SAM weights do not match the model: 0 missing .* unexpected"):
        clicksam.build_sam("tiny", checkpoint=hq_file)
    with pytest.raises(ValueError, match=r"sam\.pth: an official SAM 2 file holds its weights under the 'model' key"):
        clicksam.build_sam("sam2_tiny", checkpoint=sam_file)


@pytest.mark.parametrize("name", ["sam2_tiny", "hq_tiny"])
def test_a_family_file_loads_with_method_stages_attached(name, tmp_path):
    """The family's loader fills the base only (the stages are not in the file)."""
    source = clicksam.build_sam(name, seed=5)
    state = source.state_dict()
    path = tmp_path / "base.pth"
    torch.save({"model": state} if name.startswith("sam2") else state, path)
    model = clicksam.build_sam(name, checkpoint=path, methods=["stable-sam"])
    assert model.stable_sam is not None and not model.random_weights
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
