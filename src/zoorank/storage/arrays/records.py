"""Small JSON records next to the arrays (scores, memos): atomic, validated, removable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


from zoorank.storage.arrays.disk_full import _is_no_space
from zoorank.storage.arrays.errors import CacheMiss, CorruptEntry, StoreNotWritable
from zoorank.storage.arrays.files import FORMAT_VERSION, _atomic_write_text, _now_iso


class RecordsMixin:
    """``put_record`` / ``get_record`` / ``has_record`` / ``delete_record`` of :class:`ArrayStore`."""

    def put_record(self, key: str, value: Any) -> Path:
        """Store a small JSON value atomically (temp file, fsync, ``os.replace``)."""
        self._writable()
        path = self.record_path(key)
        self._ensure_group(path.parent)
        body = json.dumps(value, sort_keys=True, allow_nan=True)
        doc = {
            "zoorank_record": FORMAT_VERSION,
            "key": key,
            "sha256": hashlib.sha256(body.encode()).hexdigest(),
            "created": _now_iso(),
            "value": json.loads(body),
        }
        try:
            _atomic_write_text(path, json.dumps(doc, sort_keys=True, allow_nan=True))
        except OSError as e:
            if _is_no_space(e):
                raise self._write_error(f"record {key!r}", path, e, len(body)) from e
            raise StoreNotWritable(f"cannot write record {key!r} at {path}: {e}") from e
        return path

    def get_record(self, key: str) -> Any:
        """Read a JSON record; CacheMiss if absent, CorruptEntry if damaged or for another key."""
        path = self.record_path(key)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CacheMiss(key, path) from None
        except (OSError, ValueError) as e:
            raise CorruptEntry(key, path, f"record unreadable ({e})") from e
        if not isinstance(doc, dict) or doc.get("key") != key or "value" not in doc:
            raise CorruptEntry(key, path, "record has no value or belongs to another key")
        body = json.dumps(doc["value"], sort_keys=True, allow_nan=True)
        if hashlib.sha256(body.encode()).hexdigest() != doc.get("sha256"):
            raise CorruptEntry(key, path, "record checksum does not match its value")
        return doc["value"]

    def has_record(self, key: str) -> bool:
        try:
            self.get_record(key)
        except (CacheMiss, CorruptEntry):
            return False
        return True

    def delete_record(self, key: str) -> bool:
        self._writable()
        try:
            self.record_path(key).unlink()
        except FileNotFoundError:
            return False
        return True
