"""How names, params and keys look to MLflow: sanitised names, flattened params, quoting, URIs."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlparse, urlunparse




_MAX_PARAM_LEN = 6000
_MAX_TAG_LEN = 8000
_NAME_RE = re.compile(r"[^A-Za-z0-9_\-. /:]")
_TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (for messages)."""
    try:
        p = urlparse(uri)
    except ValueError:
        return uri
    if p.password:
        netloc = p.netloc.replace(f":{p.password}@", ":***@")
        return urlunparse(p._replace(netloc=netloc))
    return uri


def logical_key(**parts: Any) -> str:
    """A 24-hex logical key for a ranking from its defining parts (zoo, datasets, params...)."""
    from zoorank.storage.keys import canonical_json

    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:24]


def ranking_key(identities, fingerprints, subset: Any, metrics, params: Mapping[str, Any]) -> str:
    """Logical key of a ranking (same inputs -> same key; MLflow reuses its parent run): the models'
    identities, the datasets' fingerprints (both as sets), the image subset (a ``SubsetSpec`` or
    its dict), the metrics (as a set) and the parameters, as ``content_digest("ranking", ...)``."""
    from zoorank.storage.keys import content_digest

    subset_parts = subset.as_dict() if hasattr(subset, "as_dict") else dict(subset)
    return content_digest("ranking", models=sorted(identities), datasets=sorted(fingerprints), subset=subset_parts,
                          metrics=sorted(metrics), params=params)


def _pair_key(model_id: str, dataset_id: str) -> str:
    return hashlib.sha256(json.dumps([model_id, dataset_id]).encode()).hexdigest()[:24]


def _quote(value: str) -> str:
    value = str(value)
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"cannot search for a value containing both quote kinds: {value!r}")


def _name(key: str) -> str:
    return _NAME_RE.sub("_", str(key))


def _flatten(d: Mapping[str, Any] | None, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{_name(k)}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            if isinstance(v, (list, tuple)):
                text = json.dumps(list(v), default=str)
            else:
                text = str(v)
            if len(text) > _MAX_PARAM_LEN:
                text = text[: _MAX_PARAM_LEN - 3] + "..."
            out[key] = text
    return out


def _as_float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {name!r} must be a number, got {value!r}") from None


def _chunks(seq: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].split("?", 1)[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw).absolute()
