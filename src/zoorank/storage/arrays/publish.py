"""Atomic publish: write into a temporary sibling, seal with the checksum, rename into place."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from zoorank.storage.arrays.checksums import _stream_checksum, array_sha256
from zoorank.storage.arrays.codecs import _codec_chain, default_chunks
from zoorank.storage.arrays.disk_full import _is_no_space
from zoorank.storage.arrays.errors import CacheMiss, CorruptEntry, StoreError
from zoorank.storage.arrays.files import ATTR, FORMAT_VERSION, TRASH_MARK, _check_array, _fsync_dir, _host_tag, _n_chunks, _nbytes, _now_iso, _rmtree, _tmp_name, log
from zoorank.storage.arrays.writer import ArrayWriter


class PublishMixin:
    """``put`` / ``writer`` / ``delete`` of :class:`ArrayStore` (docs/caching.md, \"Atomic publish\")."""

    def _new_array(self, tmp: Path, shape: tuple[int, ...], dtype: np.dtype, chunks: tuple[int, ...] | None,
                   attrs: Mapping[str, Any] | None, codec: str | None) -> Any:
        import zarr

        chunks = tuple(int(c) for c in chunks) if chunks is not None else default_chunks(shape, dtype, self.chunk_bytes)
        if len(chunks) != len(shape) or any(c < 1 for c in chunks):
            raise ValueError(f"chunks {chunks} do not fit shape {shape}")
        user = dict(attrs or {})
        if ATTR in user:
            raise ValueError(f"attribute name {ATTR!r} is reserved")
        json.dumps(user)  # attributes must be JSON-serialisable; fail before writing data
        return zarr.create_array(
            store=str(tmp),
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            compressors=_codec_chain(codec or self.codec),
            fill_value=0,
            attributes=user,
            config={"write_empty_chunks": True},
            zarr_format=3,
        )

    def _prepare(self, key: str) -> tuple[Path, Path]:
        self._writable()
        final = self.path(key)
        self._ensure_group(final.parent)
        tmp = final.with_name(_tmp_name(final.name))
        return final, tmp

    def _seal(self, key: str, arr: Any, checksum: str) -> None:
        shape = tuple(int(s) for s in arr.shape)
        chunks = tuple(int(c) for c in arr.chunks)
        arr.update_attributes(
            {
                ATTR: {
                    "format": FORMAT_VERSION,
                    "complete": True,
                    "key": key,
                    "shape": list(shape),
                    "dtype": np.dtype(arr.dtype).str,
                    "chunks": list(chunks),
                    "n_chunks": _n_chunks(shape, chunks),
                    "checksum": checksum,
                    "codec": [c.to_dict() for c in arr.compressors],
                    "created": _now_iso(),
                    "created_unix": time.time(),
                    "writer": {"host": socket.gethostname(), "pid": os.getpid()},
                }
            }
        )

    def _publish(self, key: str, tmp: Path, final: Path, *, overwrite: bool) -> Path:
        """Rename ``tmp`` into ``final``; on a lost race keep a valid winner and drop ours."""
        if overwrite and final.exists():
            self._move_aside(final)
        for _attempt in range(5):
            try:
                os.rename(tmp, final)
                _fsync_dir(final.parent)
                return final
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                    err = self._write_error(f"{key!r} (publishing)", final, e)
                    _rmtree(tmp)
                    raise err from e
            try:
                self._verify_streaming(key, final)
            except CacheMiss:
                continue  # vanished between rename and check: try again
            except CorruptEntry as bad:
                log.warning("replacing %s", bad)
                self._move_aside(final)
                continue
            log.debug("entry %s was published by another writer; discarding ours", key)
            _rmtree(tmp)
            return final
        _rmtree(tmp)
        raise StoreError(f"could not publish {key!r} at {final}: it keeps changing under us")

    def _move_aside(self, final: Path) -> None:
        trash = final.with_name(final.name + f"{TRASH_MARK}{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:12]}")
        try:
            os.rename(final, trash)
        except FileNotFoundError:
            return
        _rmtree(trash)

    def put(
        self,
        key: str,
        array: Any,
        *,
        attrs: Mapping[str, Any] | None = None,
        chunks: Sequence[int] | None = None,
        codec: str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Publish ``array`` under ``key`` atomically; return the entry's folder.

        If a valid entry already exists it is kept (content keys make it the same result) unless
        ``overwrite``; a corrupt one is replaced.
        """
        a = _check_array(array)
        final, tmp = self._prepare(key)
        if not overwrite and self.exists(key):
            return final
        try:
            ch = tuple(chunks) if chunks is not None else None
            arr = self._new_array(tmp, tuple(a.shape), a.dtype, ch, attrs, codec)
            arr[...] = a
            self._seal(key, arr, array_sha256(a))
        except BaseException as e:
            err = self._write_error(repr(key), tmp, e, a.nbytes) if isinstance(e, OSError) or _is_no_space(e) else None
            _rmtree(tmp)
            if err is not None:
                raise err from e
            raise
        return self._publish(key, tmp, final, overwrite=overwrite)

    @contextlib.contextmanager
    def writer(
        self,
        key: str,
        shape: Sequence[int],
        dtype: Any,
        chunks: Sequence[int] | None = None,
        *,
        attrs: Mapping[str, Any] | None = None,
        codec: str | None = None,
        overwrite: bool = False,
    ) -> Iterator[ArrayWriter]:
        """Context manager for incremental writes; publishes on a clean exit only.

        >>> with store.writer(key, (n, d), "float32") as w:   # doctest: +SKIP
        ...     for batch in batches:
        ...         w.append(batch)

        An exception inside the block (or rows left unwritten) deletes the temporary entry and
        nothing becomes visible. If another process publishes the key first, its entry is kept.
        """
        shape_t = tuple(int(s) for s in shape)
        if not shape_t:
            raise ValueError("writer() needs at least one dimension; use put() for scalars")
        dt = np.dtype(dtype)
        _check_array(np.zeros(0, dtype=dt))
        final, tmp = self._prepare(key)
        try:
            arr = self._new_array(tmp, shape_t, dt, tuple(chunks) if chunks is not None else None, attrs, codec)
        except OSError as e:
            err = self._write_error(repr(key), tmp, e)
            _rmtree(tmp)
            raise err from e
        except BaseException:
            _rmtree(tmp)
            raise
        w = ArrayWriter(self, key, tmp, arr, shape_t)
        try:
            yield w
            if not w.complete:
                missing = int((~w._written).sum())
                raise StoreError(f"writer for {key!r} closed with {missing} of {shape_t[0]} rows unwritten")
            try:
                self._seal(key, arr, _stream_checksum(arr))
            except OSError as e:
                raise self._write_error(repr(key), tmp, e, _nbytes(shape_t, dt)) from e
        except BaseException:
            _rmtree(tmp)
            raise
        self._publish(key, tmp, final, overwrite=overwrite)

    def delete(self, key: str) -> bool:
        """Remove an entry (atomically hidden first). Returns whether one existed."""
        self._writable()
        path = self.path(key)
        if not path.exists():
            return False
        self._move_aside(path)
        return True
