"""Model identity for cache keys: ``<id>@<sha256 of the weights>.<digest of the config>``.

Computing it means building the backbone and hashing its weight file (83 MB for CRAFT),
which dominated a fully cached rerun. :func:`model_identity` therefore keeps the result as
a record in the store, keyed by the model spec and the versions of the packages that carry
its code and weights, and trusts that record only while the weight file it names has the
same size, modification time and inode (the stat-cache rule of make and git's index). An
edited, replaced or reinstalled file is hashed again; a backbone without a single weight
file (a state dict built in code) is never memoised.
"""
from __future__ import annotations

import dataclasses
import os
from importlib import metadata

from zoorank.storage.arrays import ArrayStore, CacheMiss, CorruptEntry, StoreNotWritable
from zoorank.storage.keys import content_digest, content_key
from zoorank.zoo.spec import CARD_FIELDS

__all__ = ["model_identity", "compute_identity", "identity_record_key"]


def _spec(spec):
    from zoorank.zoo.registry import _as_spec

    return _as_spec(spec)


def _package_versions(spec) -> dict:
    """Installed versions of the pip packages behind a built-in (cheap: no import)."""
    from zoorank.zoo.registry import BUILTINS

    if spec.kind != "builtin" or spec.id not in BUILTINS:
        return {}
    out = {}
    for pip_spec in BUILTINS[spec.id].packages:
        name = pip_spec.split("==")[0]
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def identity_record_key(spec) -> str:
    """Store key of the memoised identity of ``spec`` (a model id, ModelSpec or mapping)."""
    spec = _spec(spec)
    fields = dataclasses.asdict(spec)
    fields.pop("origin", None)  # where the entry was written, not what it is
    for name in CARD_FIELDS:     # what its model card says, not what it computes
        fields.pop(name, None)
    return content_key("model_identity", spec=fields, packages=_package_versions(spec))


def _file_stat(path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns), int(st.st_ino)]


def compute_identity(backbone, model_id: str) -> dict:
    """Identity of a loaded backbone: id + weights digest + config digest (overrides included)."""
    cfg = backbone.config
    config_digest = content_digest("features", config=dataclasses.asdict(cfg))[:8]
    return {"model": model_id,
            "identity": f"{model_id}@{backbone.weights_digest()[:16]}.{config_digest}",
            "has_outputs": cfg.source_task is not None and bool(cfg.num_source_outputs),
            "feature_dim": int(cfg.feature_dim)}


def _memoised(store: ArrayStore, key: str) -> dict | None:
    try:
        record = store.get_record(key)
    except (CacheMiss, CorruptEntry):
        return None
    if record.get("weights_file") is None or _file_stat(record["weights_file"]) != record.get("stat"):
        return None
    return record["identity"]


def model_identity(spec, store: ArrayStore | None = None, *, load_backbone=None) -> dict:
    """``{"model", "identity", "has_outputs", "feature_dim"}`` of a zoo entry.

    With a ``store``, a record whose weight file is unchanged (size, mtime, inode) answers
    without loading the backbone; otherwise the backbone is built (``load_backbone(spec)``,
    default :func:`zoorank.zoo.load_model`), hashed, and the record written.
    """
    from zoorank.zoo import load_model

    model_id = spec if isinstance(spec, str) else spec.id
    key = identity_record_key(spec) if store is not None else None
    if key is not None and (hit := _memoised(store, key)) is not None:
        return hit
    backbone = (load_backbone or load_model)(spec)
    identity = compute_identity(backbone, model_id)
    weights_file = backbone.weights_file
    if key is not None and weights_file is not None and (stat := _file_stat(weights_file)) is not None:
        try:
            store.put_record(key, {"identity": identity, "weights_file": str(weights_file), "stat": stat})
        except StoreNotWritable:
            pass  # a read-only store still ranks; the identity is recomputed next time
    return identity
