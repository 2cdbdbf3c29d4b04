"""Embedding cache: no re-encoding of a seen image, disk persistence, stale entries recomputed."""
from __future__ import annotations

import json

import pytest
import torch

import clicksam
from clicksam.cache import EmbeddingCache


def _counting(model, monkeypatch):
    calls = []
    original = model.encode

    def encode(x):
        calls.append(1)
        return original(x)

    monkeypatch.setattr(model, "encode", encode)
    return calls


def test_reopening_an_image_never_reruns_the_encoder(tmp_path, tiny_model, photo, monkeypatch):
    calls = _counting(tiny_model, monkeypatch)
    predictor = clicksam.SamPredictor(tiny_model, cache=EmbeddingCache(tmp_path, max_items=2))
    predictor.set_image(photo)
    first = predictor.features.clone()
    predictor.set_image(photo[::-1].copy())
    predictor.set_image(photo)
    assert len(calls) == 2 and predictor.last_encode_cached
    assert torch.equal(predictor.features, first)
    # a fresh process: memory empty, disk entry reused
    fresh = clicksam.SamPredictor(tiny_model, cache=EmbeddingCache(tmp_path))
    fresh.set_image(photo)
    assert len(calls) == 2 and torch.equal(fresh.features, first)
    assert fresh.input_size == predictor.input_size and fresh.original_size == (400, 600)


def test_stale_or_corrupt_entries_are_recomputed(tmp_path, tiny_model, photo, monkeypatch):
    from safetensors.torch import load_file, save_file

    calls = _counting(tiny_model, monkeypatch)
    predictor = clicksam.SamPredictor(tiny_model, cache=EmbeddingCache(tmp_path))
    predictor.set_image(photo)
    good = predictor.features.clone()
    sig = predictor.signature(photo)
    path = next(tmp_path.rglob("*.safetensors"))
    # an entry whose stored signature disagrees (e.g. written by another preprocessing version)
    meta = {"signature": json.dumps({**json.loads(json.dumps(sig.__dict__)), "preprocess_version": "old"}),
            "original_size": "[400, 600]", "input_size": "[683, 1024]"}
    save_file({"embedding": torch.zeros_like(good)}, path, metadata=meta)
    cache = EmbeddingCache(tmp_path)
    predictor = clicksam.SamPredictor(tiny_model, cache=cache)
    predictor.set_image(photo)
    assert len(calls) == 2 and cache.rejected == 1 and torch.allclose(predictor.features, good)
    assert torch.allclose(load_file(path)["embedding"], good)  # rewritten
    path.write_bytes(b"corrupt")
    cache = EmbeddingCache(tmp_path)
    clicksam.SamPredictor(tiny_model, cache=cache).set_image(photo)
    assert len(calls) == 3 and cache.rejected == 1


def test_other_weights_or_format_give_other_keys(tiny_model, photo):
    other = clicksam.build_sam("tiny", seed=5)
    a = clicksam.SamPredictor(tiny_model).signature(photo)
    b = clicksam.SamPredictor(other).signature(photo)
    assert a.key != b.key and a.features["weights"] != b.features["weights"]
    other.image_format = "BGR"
    assert clicksam.SamPredictor(other).signature(photo).key != b.key


def test_one_feature_signature_for_the_cache_and_the_training_store(tiny_model, photo):
    from clicksam.cache import feature_signature
    from clicksam.train.store import store_signature

    signature = clicksam.SamPredictor(tiny_model).signature(photo)
    assert signature.features == feature_signature(tiny_model)
    assert store_signature(tiny_model) == {**feature_signature(tiny_model), "dtype": "float16"}
    # what the features depend on: model, encoder weights and preprocessing, not the method stages
    with_stage = clicksam.build_sam("tiny", methods=["stable-sam"])
    assert feature_signature(with_stage) == feature_signature(tiny_model)
    assert set(signature.features) == {"model_name", "weights", "image_format", "preprocess", "image_size",
                                       "pixel_mean", "pixel_std"}


def test_a_bundle_of_several_tensors_round_trips_on_disk(tmp_path):
    """A family whose encoder hands over several tensors (e.g. SAM 2's levels) is one entry."""
    from clicksam.cache import CachedFeatures, EmbeddingSignature

    bundle = {"embedding": torch.randn(1, 8, 4, 4), "high_res": torch.randn(1, 4, 16, 16)}
    sig = EmbeddingSignature("abc", {"model_name": "x", "weights": "w"})
    EmbeddingCache(tmp_path).put(sig, CachedFeatures(bundle, (30, 40), (24, 32)))
    hit = EmbeddingCache(tmp_path).get(sig)
    assert hit is not None and set(hit.features) == set(bundle)
    assert all(torch.equal(hit.features[k], bundle[k]) for k in bundle)
    assert hit.original_size == (30, 40) and hit.input_size == (24, 32)


def test_lru_evicts_oldest(tiny_model, photo):
    cache = EmbeddingCache(None, max_items=1)
    predictor = clicksam.SamPredictor(tiny_model, cache=cache)
    predictor.set_image(photo)
    predictor.set_image(photo[:200].copy())
    predictor.set_image(photo)
    assert not predictor.last_encode_cached and cache.hits == 0
    with pytest.raises(ValueError, match="max_items must be >= 1"):
        EmbeddingCache(max_items=0)


def test_an_entry_corrupted_at_the_same_size_is_re_encoded_never_nan(tmp_path, tiny_model, photo, monkeypatch):
    import numpy as np

    calls = _counting(tiny_model, monkeypatch)
    predictor = clicksam.SamPredictor(tiny_model, cache=EmbeddingCache(tmp_path))
    predictor.set_image(photo)
    good = predictor.features.clone()
    path = next(tmp_path.rglob("*.safetensors"))
    data = bytearray(path.read_bytes())
    data[-40_000:-39_000] = b"\xff" * 1000  # inside the tensor bytes: 250 float32 NaNs, same file size
    path.write_bytes(bytes(data))
    cache = EmbeddingCache(tmp_path)
    reopened = clicksam.SamPredictor(tiny_model, cache=cache)
    reopened.set_image(photo)
    assert len(calls) == 2 and cache.rejected == 1 and not reopened.last_encode_cached
    assert torch.allclose(reopened.features, good) and not torch.isnan(reopened.features).any()
    _, scores, _ = reopened.predict(point_coords=np.array([[300.0, 200.0]]), point_labels=np.array([1]))
    assert np.isfinite(scores).all()
    again = clicksam.SamPredictor(tiny_model, cache=EmbeddingCache(tmp_path))  # the rewritten entry is good
    again.set_image(photo)
    assert again.last_encode_cached and len(calls) == 2


def test_an_entry_without_a_checksum_is_re_encoded(tmp_path, tiny_model, photo, monkeypatch):
    from safetensors.torch import load_file, safe_open, save_file

    predictor = clicksam.SamPredictor(tiny_model, cache=EmbeddingCache(tmp_path))
    predictor.set_image(photo)
    path = next(tmp_path.rglob("*.safetensors"))
    with safe_open(str(path), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "tensor_sha256"}
    save_file(load_file(path), path, metadata=meta)  # an entry written before checksums existed
    cache = EmbeddingCache(tmp_path)
    clicksam.SamPredictor(tiny_model, cache=cache).set_image(photo)
    assert cache.rejected == 1


def test_the_cache_folder_expands_the_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert EmbeddingCache("~/.cache/clicksam/emb").directory == tmp_path / ".cache/clicksam/emb"
