"""The embedding store holds the model family's whole feature bundle (SAM 2's three levels,
HQ-SAM's early feature), the trainer reads it back or computes the same from the images, and
version-1 stores (SAM's one embedding tensor) are still read; a store built for other weights is
refused, and an interrupted build resumes."""
from __future__ import annotations

import json

import pytest
import torch

from clicksam.train.data import collate
from clicksam.train.readers import build_source
from clicksam.train.store import EmbeddingStore, build_embedding_store
from clicksam.training.config import config_from_dict
from clicksam.training.trainer import Trainer, build_base_model

from .conftest import SYNTHETIC, tiny_config

SMALL = {**SYNTHETIC, "count": 4}


def test_store_signature_mismatch_is_refused(tmp_path, tiny_store):
    from clicksam.build import build_sam

    other = build_sam("tiny", seed=123)  # other random weights: another encoder digest
    with pytest.raises(ValueError, match="different model"):
        EmbeddingStore(tiny_store).check(other)
    with pytest.raises(ValueError, match="Rebuild"):
        build_embedding_store([build_source({"type": "synthetic", "count": 6, "seed": 0, "size": [256, 320]})],
                              tiny_store, other, progress=False)
    with pytest.raises(RuntimeError, match="not in the embedding store"):
        EmbeddingStore(tiny_store).get("coco/nothing.jpg")


def test_interrupted_store_build_resumes(tmp_path, tiny_store):
    import shutil

    from clicksam.build import build_sam

    copy = tmp_path / "store"
    shutil.copytree(tiny_store, copy)
    (copy / "shard-00001.safetensors").unlink()  # as if killed while writing shard 1
    partial = EmbeddingStore(copy)
    assert len(partial) == 4 and partial.missing_shards == ["shard-00001.safetensors"]
    summary = build_embedding_store([build_source({"type": "synthetic", "count": 6, "seed": 0, "size": [256, 320]})],
                                    copy, build_sam("tiny", seed=0), shard_size=4, progress=False)
    assert (summary.encoded, summary.shards_reused) == (2, 1)
    full, ref = EmbeddingStore(copy), EmbeddingStore(tiny_store)
    emb = full.get("synthetic-0/000005")
    assert emb.dtype == torch.float16 and emb.shape == (256, 64, 64)
    assert torch.equal(emb, ref.get("synthetic-0/000005"))


@pytest.mark.parametrize("model_name,shapes", [
    ("sam2_tiny", {"embedding": (256, 64, 64), "high_res_s0": (32, 256, 256), "high_res_s1": (64, 128, 128)}),
    ("hq_tiny", {"embedding": (256, 64, 64), "early_feature": (64, 64, 64)}),
])
def test_a_family_store_holds_the_bundle_and_trains(model_name, shapes, tmp_path):
    store_dir = tmp_path / "store"
    model = build_base_model(model_name)
    build_embedding_store([build_source(SMALL)], store_dir, model, shard_size=4, batch_size=2, progress=False)
    assert json.loads((store_dir / "manifest.json").read_text())["features"] == list(shapes)
    store = EmbeddingStore(store_dir)
    store.check(model)
    key = next(iter(store.index))
    bundle = store.get_features(key)
    assert {k: tuple(v.shape) for k, v in bundle.items()} == shapes and bundle["embedding"].dtype == torch.float16
    assert torch.equal(store.get(key), bundle["embedding"])

    # the trainer's own encoder path gives the store's bundle (up to float16), entry by entry
    config = tiny_config(tmp_path / "images", None, model=model_name, data={"augment": False, "datasets": [SMALL]})
    from_images = Trainer(config_from_dict(config), progress=False)
    computed = from_images._features(collate([from_images.dataset[(0, 1)]]))  # scene 1's one object
    stored = store.get_features("synthetic-0/000001")
    assert computed.keys() == stored.keys()
    for name, value in stored.items():
        value = value.float()
        assert computed[name][0].shape == value.shape
        assert (computed[name][0] - value).abs().max().item() < 2e-2 * value.abs().max().item(), name

    run = tiny_config(tmp_path / "run", store_dir, model=model_name, steps=2, data={"datasets": [SMALL]})
    trainer = Trainer(config_from_dict(run), progress=False)
    data = collate([trainer.dataset[(0, 0)], trainer.dataset[(0, 1)]])
    assert {k for k in data if k.startswith("feature.")} == {f"feature.{k}" for k in shapes}
    result = trainer.run()
    assert result.step == 2 and result.method_file is not None and result.last_loss == result.last_loss


def test_a_version_1_store_is_still_read(tmp_path, tiny_store):
    """Version 1 kept SAM's embedding as one "embeddings" tensor."""
    import shutil

    from safetensors.torch import load_file, save_file

    old = tmp_path / "v1"
    shutil.copytree(tiny_store, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["version"] = 1
    manifest.pop("features")
    (old / "manifest.json").write_text(json.dumps(manifest))
    for shard in old.glob("shard-*.safetensors"):
        from safetensors import safe_open

        with safe_open(str(shard), "pt") as f:
            meta = f.metadata()
        tensors = load_file(str(shard))
        save_file({"embeddings": tensors["embedding"]}, str(shard), metadata=meta)
    new, v1 = EmbeddingStore(tiny_store), EmbeddingStore(old)
    key = next(iter(new.index))
    assert v1.version == 1 and v1.get_features(key).keys() == {"embedding"}
    assert torch.equal(v1.get(key), new.get(key))
    with pytest.raises(ValueError, match="holds a version 1 store; build the new one in a new --out folder"):
        build_embedding_store([build_source(SYNTHETIC)], old, build_base_model("tiny"), shard_size=4, progress=False)
