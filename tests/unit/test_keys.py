"""Content keys: stable, sensitive to every part, independent of argument and dict order."""

from __future__ import annotations

import enum
from pathlib import Path

import numpy as np
import pytest

from zoorank.storage import keys
from zoorank.storage.keys import (
    DIGEST_CHARS,
    STAGE_VERSIONS,
    canonical_json,
    content_digest,
    content_key,
    split_key,
)

BASE = dict(
    model_id="mobilenet_v2",
    weights_digest="b0353104",
    dataset="fashion_mnist",
    split="train",
    subset={"per_class": 100, "seed": 0},
    preprocessing=2,
    params={"batch_size": 64, "image_size": 224},
)


def test_format_and_stage_prefix():
    k = content_key("features", **BASE)
    stage, digest = split_key(k)
    assert stage == "features"
    assert len(digest) == DIGEST_CHARS and all(c in "0123456789abcdef" for c in digest)
    assert content_digest("features", **BASE) == digest


def test_stable_across_calls_and_pinned_value():
    a = content_key("features", **BASE)
    assert a == content_key("features", **dict(BASE))
    # Pinned: if this literal changes, every existing cache entry is invalidated. Update it only
    # together with a deliberate KEY_SCHEMA / canonical-form / STAGE_VERSIONS["features"] change.
    pinned = content_key(
        "features", model_id="m", weights_digest="w", dataset="d", split="train", subset=None,
        preprocessing=1, params={"a": 1, "b": [0.5, "x"]},
    )
    assert pinned == "features/591c1d51a486ecd4dc960f88"
    assert canonical_json({"b": 1, "a": [1.5, (2, 3)]}) == '{"a":[{"__float__":"1.5"},[2,3]],"b":1}'


@pytest.mark.parametrize("part", sorted(BASE))
def test_sensitive_to_each_part(part):
    base = content_key("features", **BASE)
    changed = dict(BASE)
    value = changed[part]
    if isinstance(value, dict):
        changed[part] = {**value, "extra": 1}
    elif isinstance(value, int):
        changed[part] = value + 1
    else:
        changed[part] = value + "x"
    assert content_key("features", **changed) != base


def test_sensitive_to_nested_value_added_and_removed_parts():
    base = content_key("features", **BASE)
    nested = {**BASE, "params": {**BASE["params"], "batch_size": 65}}
    assert content_key("features", **nested) != base
    assert content_key("features", **BASE, upstream="x") != base
    fewer = {k: v for k, v in BASE.items() if k != "split"}
    assert content_key("features", **fewer) != base
    # a None part is still a part
    assert content_key("features", **BASE, extra=None) != base


def test_sensitive_to_stage_and_stage_version(monkeypatch):
    assert content_key("features", **BASE).split("/")[1] != content_key("svm_logits", **BASE).split("/")[1]
    before = content_key("svm_logits", **BASE)
    monkeypatch.setitem(STAGE_VERSIONS, "svm_logits", STAGE_VERSIONS["svm_logits"] + 1)
    assert content_key("svm_logits", **BASE) != before
    assert content_key("features", stage_version=99, **BASE) != content_key("features", **BASE)


def test_order_independence():
    a = content_key("features", **BASE)
    reordered = dict(reversed(list(BASE.items())))
    reordered["params"] = dict(reversed(list(BASE["params"].items())))
    reordered["subset"] = {"seed": 0, "per_class": 100}
    assert content_key("features", **reordered) == a


def test_canonical_numbers_and_containers():
    c = content_key
    assert c("scores", x=(1, 2)) == c("scores", x=[1, 2])
    assert c("scores", x=np.int64(3)) == c("scores", x=3)
    assert c("scores", x=np.float64(0.25)) == c("scores", x=0.25)
    assert c("scores", x=np.float32(0.5)) == c("scores", x=0.5)  # exactly representable
    assert c("scores", x=np.float32(0.1)) != c("scores", x=0.1)  # not the same number
    assert c("scores", x=1.0) == c("scores", x=1)
    assert c("scores", x=-0.0) == c("scores", x=0.0)
    assert c("scores", x=True) != c("scores", x=1)
    assert c("scores", x=np.bool_(True)) == c("scores", x=True)
    assert c("scores", x="1") != c("scores", x=1)
    assert c("scores", x=0.1) != c("scores", x=0.1 + 1e-15)
    assert c("scores", x=float("nan")) == c("scores", x=float("nan"))
    assert c("scores", x=float("inf")) != c("scores", x=float("-inf"))
    assert c("scores", x={3, 1, 2}) == c("scores", x={2, 3, 1})
    assert c("scores", x={1, 2}) != c("scores", x=[1, 2])
    assert c("scores", x=Path("a/b")) == c("scores", x="a/b")


def test_arrays_bytes_enums():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert content_key("scores", w=a) == content_key("scores", w=a.copy())
    assert content_key("scores", w=a) != content_key("scores", w=a.astype(np.float64))
    assert content_key("scores", w=a) != content_key("scores", w=a.reshape(3, 2))
    b = a.copy()
    b[0, 0] = 1e-7
    assert content_key("scores", w=a) != content_key("scores", w=b)
    assert content_key("scores", w=b"abc") != content_key("scores", w=b"abd")

    class Color(enum.Enum):
        RED = "red"

    assert content_key("scores", c=Color.RED) == content_key("scores", c="red")


def test_errors_name_the_problem():
    with pytest.raises(KeyError, match="unknown stage 'featurez'"):
        content_key("featurez", a=1)
    with pytest.raises(TypeError, match=r"parts\.params\.fn"):
        content_key("features", params={"fn": object()})
    with pytest.raises(TypeError, match="dict keys must be strings"):
        content_key("features", params={1: 2})
    with pytest.raises(ValueError):
        split_key("nodigest")


def test_pipeline_stages_are_registered():
    for stage in ("features", "labels", "source_probs", "svm_logits", "ntk_eigenvalues", "scores", "ranking"):
        assert content_key(stage, x=1).startswith(stage + "/")


def test_register_stage(monkeypatch):
    monkeypatch.setattr(keys, "STAGE_VERSIONS", dict(STAGE_VERSIONS))
    keys.register_stage("ground_truth", 3)
    assert content_key("ground_truth", a=1).startswith("ground_truth/")
    with pytest.raises(ValueError):
        keys.register_stage("Bad-Name")


def test_file_sha256(tmp_path):
    p = tmp_path / "w.bin"
    p.write_bytes(b"weights")
    import hashlib

    assert keys.file_sha256(p) == hashlib.sha256(b"weights").hexdigest()
