"""The ArrayStore: a Zarr v3 store of immutable, content-keyed, verified arrays (docs/caching.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoorank.storage.arrays.codecs import DEFAULT_CHUNK_BYTES, DEFAULT_CODEC, make_codecs
from zoorank.storage.arrays.disk_full import _is_no_space, write_error
from zoorank.storage.arrays.errors import CacheMiss, CorruptEntry, StoreError, StoreNotWritable
from zoorank.storage.arrays.files import ATTR, _GROUP_JSON, _atomic_write_text, _tmp_name, _validate_key
from zoorank.storage.arrays.maintenance import MaintenanceMixin
from zoorank.storage.arrays.publish import PublishMixin
from zoorank.storage.arrays.records import RecordsMixin
from zoorank.storage.arrays.verification import VerificationMixin


class ArrayStore(VerificationMixin, PublishMixin, RecordsMixin, MaintenanceMixin):
    """A Zarr v3 store of immutable, content-keyed, verified arrays (see module docstring).

    Parameters
    ----------
    root : path of the store folder (created, with its group metadata, unless ``read_only``).
    read_only : never create or modify anything; ``put``/``writer``/``delete``/``prune`` raise.
    codec : default codec name (one of :data:`CODECS`).
    chunk_bytes : target chunk size for default chunks.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        read_only: bool = False,
        codec: str = DEFAULT_CODEC,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ):
        self.root = Path(os.path.expanduser(os.fspath(root))).absolute()
        self.read_only = read_only
        make_codecs(codec)  # validates the name
        self.codec = codec
        self.chunk_bytes = int(chunk_bytes)
        if not read_only:
            self._ensure_group(self.root)

    def __repr__(self) -> str:
        return f"ArrayStore({str(self.root)!r}{', read_only=True' if self.read_only else ''})"

    # ----------------------------------------------------------------- paths

    def path(self, key: str) -> Path:
        """Folder of the (published) entry for ``key``."""
        return self.root.joinpath(*_validate_key(key))

    def record_path(self, key: str) -> Path:
        segs = _validate_key(key)
        return self.root.joinpath(*segs[:-1], segs[-1] + ".json")

    def _write_error(self, what: str, folder: Path, exc: BaseException, needed: int | None = None) -> StoreNotWritable:
        """The error for an OSError while writing ``what`` into ``folder`` (:func:`.disk_full.write_error`).
        Call it before removing the partial entry (the space left is then what the write met)."""
        return write_error(self.root, what, folder, exc, needed)

    def _writable(self) -> None:
        if self.read_only:
            raise StoreNotWritable(f"store {self.root} was opened read-only")

    def check_writable(self) -> None:
        """Prove the store root takes writes (create and remove a probe file named like a
        temporary, so readers ignore it); StoreNotWritable naming the root otherwise. Catches a
        read-only mount, which the group metadata check alone does not (nothing is written when
        ``zarr.json`` already exists), also for root, whom file permissions do not stop."""
        self._writable()
        probe = self.root / _tmp_name("write-probe")
        try:
            fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise StoreNotWritable(
                f"cache store {self.root} is not writable ({e.strerror or e.__class__.__name__}). "
                "Set ZOORANK_STORE / --store to a writable folder (a read-only store can be used as "
                "--read-store)."
            ) from e

    def _ensure_group(self, folder: Path) -> None:
        """Create ``folder`` (and parents up to root) as Zarr groups; clear error if impossible."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            rel = folder.relative_to(self.root)
            cur = self.root
            for part in ("",) + rel.parts:
                cur = cur / part if part else cur
                meta = cur / "zarr.json"
                if not meta.exists():
                    _atomic_write_text(meta, _GROUP_JSON, fsync=False)
                else:
                    node = json.loads(meta.read_text()).get("node_type")
                    if node != "group":
                        raise StoreError(
                            f"{cur} is a Zarr {node}, not a group: a key cannot nest inside an entry"
                        )
        except StoreError:
            raise
        except OSError as e:
            if _is_no_space(e):
                raise self._write_error(f"the group {folder}", folder / "zarr.json", e) from e
            raise StoreNotWritable(
                f"cache store {self.root} is not writable: cannot create {folder} "
                f"({e.strerror or e.__class__.__name__}: {e.filename or folder}). "
                "Set ZOORANK_STORE / --store to a writable folder."
            ) from e

    # ----------------------------------------------------------------- reading

    def exists(self, key: str, *, deep: bool = True) -> bool:
        """True when a complete, valid entry exists (``deep`` also checks every byte)."""
        try:
            self.verify(key, deep=deep)
        except (CacheMiss, CorruptEntry):
            return False
        return True

    def get(
        self,
        key: str,
        *,
        expect_shape: Sequence[int] | None = None,
        expect_dtype: Any = None,
    ) -> np.ndarray:
        """Read a verified array. Raises CacheMiss or CorruptEntry (also when ``expect_*`` differ)."""
        path = self.path(key)
        data, _ = self._read_verified(key, path)
        if expect_shape is not None and tuple(data.shape) != tuple(int(s) for s in expect_shape):
            raise CorruptEntry(key, path, f"shape {data.shape} is not the expected {tuple(expect_shape)}")
        if expect_dtype is not None and data.dtype != np.dtype(expect_dtype):
            raise CorruptEntry(key, path, f"dtype {data.dtype} is not the expected {np.dtype(expect_dtype)}")
        return data

    def attrs(self, key: str) -> dict[str, Any]:
        """User attributes of an entry (shallow-verified)."""
        path = self.path(key)
        self._check_shallow(key, path)
        attrs = dict((self._read_meta(key, path).get("attributes") or {}))
        attrs.pop(ATTR, None)
        return attrs

    def checksum(self, key: str) -> str:
        """Recorded ``sha256:<hex>`` of an entry (shallow-verified): an upstream identity for keys."""
        return str(self.verify(key, deep=False)["checksum"])

    def open_lazy(self, key: str, *, verify: bool = False) -> Any:
        """Read-only ``zarr.Array`` for lazy/dask use (``dask.array.from_zarr(store.open_lazy(k))``).

        Always shallow-verified; every chunk read is CRC32C-checked by the codec chain, so a
        damaged chunk raises on access. ``verify=True`` checks the full checksum first.
        """
        import zarr

        path = self.path(key)
        if verify:
            self._verify_streaming(key, path)
        else:
            self._check_shallow(key, path)
        return zarr.open_array(store=str(path), mode="r")
