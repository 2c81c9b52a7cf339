"""Memoised model identity (zoorank.pipeline.identity): reused while the weight file is unchanged,
recomputed when it changes, and always equal to the identity of the loaded backbone."""
from __future__ import annotations

import os

import pytest
import torch

from zoorank.pipeline.identity import compute_identity, identity_record_key, model_identity
from zoorank.storage.arrays import ArrayStore
from zoorank.zoo import load_model, spec_from_mapping


class CountingLoader:
    def __init__(self):
        self.calls = 0

    def __call__(self, spec):
        self.calls += 1
        return load_model(spec)


def _save_small_net(path, seed):
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.mobilenet_v3_small(weights=None, num_classes=3).state_dict(), path)


@pytest.fixture
def local_spec(tmp_path):
    _save_small_net(tmp_path / "net.pth", seed=0)
    return spec_from_mapping({"id": "small", "source": "torchvision:mobilenet_v3_small",
                              "weights_path": "net.pth"}, base_dir=tmp_path)


def test_second_call_reuses_the_record_without_loading(tmp_path, local_spec):
    store, loader = ArrayStore(tmp_path / "store.zarr"), CountingLoader()
    first = model_identity(local_spec, store, load_backbone=loader)
    again = model_identity(local_spec, ArrayStore(tmp_path / "store.zarr"), load_backbone=loader)
    assert loader.calls == 1
    assert again == first == compute_identity(load_model(local_spec), "small")
    assert first["feature_dim"] == 1024 and first["has_outputs"] is False  # no source_task named


def test_changed_weight_file_is_hashed_again(tmp_path, local_spec):
    store, loader = ArrayStore(tmp_path / "store.zarr"), CountingLoader()
    before = model_identity(local_spec, store, load_backbone=loader)
    weights = tmp_path / "net.pth"
    size = weights.stat().st_size
    _save_small_net(weights, seed=1)          # same architecture, same size, other weights
    assert weights.stat().st_size == size
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # coarse-mtime filesystems
    after = model_identity(local_spec, store, load_backbone=loader)
    assert loader.calls == 2
    assert after["identity"] != before["identity"]
    assert after == compute_identity(load_model(local_spec), "small")


def test_deleted_weight_file_is_not_answered_from_the_record(tmp_path, local_spec):
    store = ArrayStore(tmp_path / "store.zarr")
    model_identity(local_spec, store)
    (tmp_path / "net.pth").unlink()
    with pytest.raises(FileNotFoundError, match="net.pth"):
        model_identity(local_spec, store)


def test_record_key_covers_overrides_not_origin(tmp_path):
    base = {"id": "small", "source": "torchvision:mobilenet_v3_small", "weights_path": "net.pth"}
    a = spec_from_mapping(base, base_dir=tmp_path, origin="zoo.yaml:1")
    b = spec_from_mapping(base, base_dir=tmp_path, origin="other.yaml:7")
    c = spec_from_mapping({**base, "input_size": 64}, base_dir=tmp_path)
    assert identity_record_key(a) == identity_record_key(b)
    assert identity_record_key(a) != identity_record_key(c)


def test_builtin_identity_is_memoised_and_matches(tmp_path):
    store, loader = ArrayStore(tmp_path / "store.zarr"), CountingLoader()
    first = model_identity("cnn_usps", store, load_backbone=loader)
    assert model_identity("cnn_usps", store, load_backbone=loader) == first
    assert loader.calls == 1
    assert first == compute_identity(load_model("cnn_usps"), "cnn_usps")
    assert first["identity"].startswith("cnn_usps@") and first["has_outputs"] is True
