"""The embedding store: signature checks and an interrupted build that resumes."""
from __future__ import annotations

import pytest
import torch


def test_store_signature_mismatch_is_refused(tmp_path, tiny_store):
    from clicksam.build import build_sam
    from clicksam.train.readers import build_source
    from clicksam.train.store import EmbeddingStore, build_embedding_store

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
    from clicksam.train.readers import build_source
    from clicksam.train.store import EmbeddingStore, build_embedding_store

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
