"""Content keys for cached intermediates (pure: no I/O except :func:`file_sha256`).

A content key names the result of one pipeline stage by everything that determines it::

    content_key("features", model_id="resnet18", weights_digest="9f2c...", dataset="fashion_mnist",
                split="train", subset="per_class=100,seed=0", preprocessing=2, params={"batch": 64})
    -> "features/3b5e0c1f9a7d2e4b6c8a0f12"

The key is ``"<stage>/<digest>"``: ``digest`` is the first 24 hex characters (96 bits) of the
SHA-256 of a canonical JSON document holding the key schema version, the stage name, the stage's
code version (:data:`STAGE_VERSIONS`) and the canonicalised parts. The ``<stage>/`` prefix is
what :class:`zoorank.storage.arrays.ArrayStore` uses as a folder, so the store is laid out by
stage. Use :func:`content_digest` for the bare hex (e.g. inside a Prefect cache key).

Rules that make keys stable and sensitive:

* Changing any part's value, adding or removing a part, or bumping the stage version changes
  the key; the order of keyword arguments and of dict entries does not.
* Canonical forms: dicts -> key-sorted objects (keys must be strings); tuples and lists ->
  lists; sets -> sorted lists; numpy scalars -> Python scalars; floats -> exact ``repr``
  (``-0.0`` -> ``0.0``; NaN/inf spelled out), and integral floats equal integers
  (``C=1`` and ``C=1.0`` give one key; ``True`` is not ``1``); numpy arrays and bytes -> their
  dtype/shape and SHA-256; paths -> POSIX strings; enums -> their value; dataclasses -> dicts.
  Anything else raises ``TypeError`` naming the part.
* Chain stages by putting the upstream key (or the upstream array's checksum) into the parts,
  e.g. ``content_key("svm_logits", features=features_key, params=...)``; a changed upstream
  then invalidates everything downstream, and only that.

Bump a stage's number in :data:`STAGE_VERSIONS` whenever its code changes what it computes.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import re
from pathlib import PurePath
from typing import Any, Mapping

import numpy as np

__all__ = [
    "STAGE_VERSIONS",
    "KEY_SCHEMA",
    "DIGEST_CHARS",
    "canonicalize",
    "canonical_json",
    "content_digest",
    "content_key",
    "split_key",
    "register_stage",
    "file_sha256",
]

#: Version of the key document layout itself (changing it invalidates every key).
KEY_SCHEMA = 1
#: Hex characters of SHA-256 kept in a key (24 = 96 bits).
DIGEST_CHARS = 24

#: Code version of every cached stage. Bump one to invalidate exactly that stage (and, through
#: chained keys, everything downstream of it).
STAGE_VERSIONS: dict[str, int] = {
    "features": 1,
    "labels": 1,
    "source_probs": 1,
    "sample_ids": 1,  # canonical dataset positions of a subset's images (sample identity)
    "svm_logits": 3,  # 2: default svm feature_norm "standard" -> "l2"; 3: folds by sample identity
    "ntk_eigenvalues": 3,  # 2: default NTK feature_norm "none" -> "l2"; 3: samples by identity
    "scores": 3,  # 2, 3: LEAD defaults changed (now per metric: zoorank.metrics.registry.Metric.version)
    "ranking": 1,
    "model_identity": 1,  # memoised weights digest (zoorank.pipeline.identity)
}

_STAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_EXACT_INT_FLOAT = 2.0**53


def register_stage(name: str, version: int = 1) -> None:
    """Add a stage (or change its version) in :data:`STAGE_VERSIONS`."""
    if not _STAGE_RE.match(name):
        raise ValueError(f"stage name {name!r} must match {_STAGE_RE.pattern}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f"stage version for {name!r} must be a non-negative int, got {version!r}")
    STAGE_VERSIONS[name] = version


def _canon_float(x: float) -> Any:
    if math.isnan(x):
        return {"__float__": "nan"}
    if math.isinf(x):
        return {"__float__": "inf" if x > 0 else "-inf"}
    if x == 0.0:
        return 0  # folds -0.0 and 0.0 (and equals int 0)
    if x.is_integer() and abs(x) < _MAX_EXACT_INT_FLOAT:
        return int(x)
    return {"__float__": repr(float(x))}


def canonicalize(obj: Any, _path: str = "parts") -> Any:
    """Return a JSON-serialisable canonical form of ``obj`` (see module docstring)."""
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return {"__bool__": bool(obj)}
    if isinstance(obj, enum.Enum):
        return canonicalize(obj.value, _path)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _canon_float(float(obj))
    if isinstance(obj, (complex, np.complexfloating)):
        c = complex(obj)
        return {"__complex__": [_canon_float(c.real), _canon_float(c.imag)]}
    if isinstance(obj, PurePath):
        return obj.as_posix()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"__bytes__": hashlib.sha256(bytes(obj)).hexdigest()}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"{_path}: object arrays cannot be part of a content key")
        arr = np.ascontiguousarray(obj)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        return {
            "__ndarray__": {
                "dtype": arr.dtype.str,
                "shape": list(arr.shape),
                "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
            }
        }
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            "__dataclass__": type(obj).__qualname__,
            "fields": canonicalize(
                {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, _path
            ),
        }
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if isinstance(k, enum.Enum):
                k = k.value
            if not isinstance(k, str):
                raise TypeError(f"{_path}: dict keys must be strings, got {type(k).__name__} {k!r}")
            out[k] = canonicalize(v, f"{_path}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [canonicalize(v, f"{_path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [canonicalize(v, f"{_path}{{}}") for v in obj]
        return {"__set__": sorted(items, key=lambda v: json.dumps(v, sort_keys=True))}
    raise TypeError(
        f"{_path}: cannot put a {type(obj).__module__}.{type(obj).__qualname__} into a content key; "
        "pass str/int/float/bool/None, lists, dicts, numpy scalars or arrays, paths or bytes"
    )


def canonical_json(obj: Any) -> str:
    """Canonical JSON text of ``obj`` (sorted keys, no whitespace, ASCII only)."""
    return json.dumps(
        canonicalize(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def _document(stage: str, parts: Mapping[str, Any], version: int | None) -> str:
    if not isinstance(stage, str) or not _STAGE_RE.match(stage):
        raise ValueError(f"stage name {stage!r} must match {_STAGE_RE.pattern}")
    if version is None:
        if stage not in STAGE_VERSIONS:
            raise KeyError(
                f"unknown stage {stage!r}; known: {sorted(STAGE_VERSIONS)} "
                "(register_stage() it or pass stage_version=)"
            )
        version = STAGE_VERSIONS[stage]
    return canonical_json(
        {"schema": KEY_SCHEMA, "stage": stage, "stage_version": int(version), "parts": dict(parts)}
    )


def content_digest(stage: str, *, stage_version: int | None = None, **parts: Any) -> str:
    """Bare hex digest (``DIGEST_CHARS`` long) of a stage and its parts."""
    doc = _document(stage, parts, stage_version)
    return hashlib.sha256(doc.encode("ascii")).hexdigest()[:DIGEST_CHARS]


def content_key(stage: str, *, stage_version: int | None = None, **parts: Any) -> str:
    """Content key ``"<stage>/<digest>"`` for a stage result determined by ``parts``.

    Typical parts: ``model_id``, ``weights_digest``, ``dataset``, ``split``, ``subset``,
    ``preprocessing`` (version), ``params`` (dict), ``upstream`` (key of the input array).
    ``stage_version`` overrides :data:`STAGE_VERSIONS` (tests, ad-hoc stages).
    """
    return f"{stage}/{content_digest(stage, stage_version=stage_version, **parts)}"


def split_key(key: str) -> tuple[str, str]:
    """``"features/ab12..."`` -> ``("features", "ab12...")``."""
    stage, sep, digest = key.partition("/")
    if not sep or not stage or not digest:
        raise ValueError(f"not a content key (expected '<stage>/<digest>'): {key!r}")
    return stage, digest


def file_sha256(path: str | os.PathLike[str], *, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 hex of a file's bytes (e.g. a weights digest to put into a key)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()
