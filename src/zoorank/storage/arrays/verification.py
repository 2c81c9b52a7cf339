"""Verified reads: metadata, completion marker, chunk grid, chunk files and SHA-256 of an entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from zoorank.storage.arrays.checksums import _stream_checksum, array_sha256
from zoorank.storage.arrays.errors import CacheMiss, CorruptEntry
from zoorank.storage.arrays.files import ATTR, _count_chunk_files, _n_chunks


class VerificationMixin:
    """How :class:`ArrayStore` decides an entry may be read (docs/caching.md, \"Verified reads\")."""

    def _read_meta(self, key: str, path: Path) -> dict[str, Any]:
        meta_file = path / "zarr.json"
        if not path.is_dir():
            raise CacheMiss(key, path)
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CorruptEntry(key, path, "zarr.json is missing") from None
        except (OSError, ValueError) as e:
            raise CorruptEntry(key, path, f"zarr.json is unreadable ({e})") from e
        if not isinstance(meta, dict) or meta.get("node_type") != "array":
            raise CorruptEntry(key, path, "zarr.json does not describe an array")
        return meta

    def _check_shallow(self, key: str, path: Path) -> tuple[dict[str, Any], Any]:
        """Metadata, marker, key, shape/dtype/chunks and chunk-file checks; returns (info, zarr array)."""
        import zarr

        meta = self._read_meta(key, path)
        info = (meta.get("attributes") or {}).get(ATTR)
        if not isinstance(info, dict) or info.get("complete") is not True:
            raise CorruptEntry(key, path, "no completion marker (an interrupted or foreign write)")
        if info.get("key") != key:
            raise CorruptEntry(key, path, f"entry is for key {info.get('key')!r}, not {key!r}")
        for name in ("shape", "dtype", "chunks", "n_chunks", "checksum"):
            if name not in info:
                raise CorruptEntry(key, path, f"bookkeeping attribute {name!r} is missing")
        try:
            arr = zarr.open_array(store=str(path), mode="r")
        except Exception as e:  # zarr raises many types for bad metadata
            raise CorruptEntry(key, path, f"zarr cannot open the array ({type(e).__name__}: {e})") from e
        shape, chunks = list(arr.shape), list(arr.chunks)
        if shape != list(info["shape"]):
            raise CorruptEntry(key, path, f"shape {tuple(shape)} differs from recorded {tuple(info['shape'])}")
        try:
            recorded_dtype = np.dtype(info["dtype"])
        except TypeError as e:
            raise CorruptEntry(key, path, f"recorded dtype {info['dtype']!r} is invalid") from e
        if np.dtype(arr.dtype) != recorded_dtype:
            raise CorruptEntry(key, path, f"dtype {np.dtype(arr.dtype)} differs from recorded {recorded_dtype}")
        if chunks != list(info["chunks"]):
            raise CorruptEntry(key, path, f"chunks {tuple(chunks)} differ from recorded {tuple(info['chunks'])}")
        expected = _n_chunks(shape, chunks)
        if int(info["n_chunks"]) != expected:
            raise CorruptEntry(key, path, f"recorded n_chunks {info['n_chunks']} != {expected} for this grid")
        found = _count_chunk_files(path)
        if found != expected:
            raise CorruptEntry(key, path, f"{found} chunk files present, {expected} expected")
        return info, arr

    def _read_verified(self, key: str, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        info, arr = self._check_shallow(key, path)
        try:
            data = np.asarray(arr[...])
        except Exception as e:
            raise CorruptEntry(key, path, f"chunk data unreadable ({type(e).__name__}: {e})") from e
        if array_sha256(data) != info["checksum"]:
            raise CorruptEntry(key, path, "data checksum does not match the recorded checksum")
        return data, info

    def _verify_streaming(self, key: str, path: Path) -> dict[str, Any]:
        info, arr = self._check_shallow(key, path)
        try:
            checksum = _stream_checksum(arr)
        except Exception as e:
            raise CorruptEntry(key, path, f"chunk data unreadable ({type(e).__name__}: {e})") from e
        if checksum != info["checksum"]:
            raise CorruptEntry(key, path, "data checksum does not match the recorded checksum")
        return info

    def verify(self, key: str, *, deep: bool = True) -> dict[str, Any]:
        """Check an entry; return its bookkeeping info or raise CacheMiss / CorruptEntry.

        ``deep=False`` skips reading chunk data (metadata, marker, key, shape, dtype, chunk
        files only).
        """
        path = self.path(key)
        if deep:
            return dict(self._verify_streaming(key, path))
        return dict(self._check_shallow(key, path)[0])
