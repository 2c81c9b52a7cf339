"""Disk full: a Zarr write that hits ENOSPC publishes nothing, names the folder and the space left,
and the next run with space completes.

Where root may mount, the store lives on a real 2 MiB tmpfs (``mount -t tmpfs -o size=2m``), so
the kernel itself refuses the chunk write; elsewhere those tests skip, naming the reason, and
``test_injected_enospc_at_a_chunk_write`` still runs: it makes Zarr's local chunk write raise the
same OSError(ENOSPC) at the third chunk."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoorank.pipeline import pairs as pipeline

from zoorank.pipeline import stages
from zoorank.storage.arrays import ArrayStore, StoreFull

pytestmark = pytest.mark.integration

TMPFS_BYTES = 2 << 20


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str = "2m"):
    """A tmpfs of ``size`` mounted at ``folder`` (root only); skips the test when it cannot mount."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8); the injected-ENOSPC test covers this case")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here ({res.stderr.strip()}); "
                    "the injected-ENOSPC test covers this case")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free on ``folder``'s file system."""
    filler = folder / "filler.bin"
    size = max(0, shutil.disk_usage(folder).free - leave)
    with open(filler, "wb") as f:
        f.write(b"\0" * size)
    return filler


def _assert_clean(store: ArrayStore) -> None:
    """Every visible entry verifies and no partial entry is left behind."""
    for key in store.list():
        store.verify(key)
    assert all(store.has_record(k) for k in store.list_records())
    assert store.info()["temporaries"] == 0


def _rows() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3000, 128)).astype(np.float32)  # 1.5 MiB


def test_chunk_write_on_a_full_tmpfs_publishes_nothing_then_succeeds(tmp_path):
    with small_tmpfs(tmp_path / "small") as mnt:
        store = ArrayStore(mnt / "store.zarr", codec="none")   # uncompressed: sizes are exact
        a = _rows()
        store.put("features/first", a)                          # 1.5 of 2 MiB used
        with pytest.raises(StoreFull) as info:
            with store.writer("features/second", a.shape, a.dtype, chunks=(500, 128)) as w:
                for i in range(0, len(a), 500):
                    w.append(a[i:i + 500])
        msg = str(info.value)
        assert f"into {store.root / 'features'}" in msg and "No space left on device" in msg
        assert "free of 2.0 MiB" in msg and "needs up to 1.5 MiB" in msg
        assert store.list() == ["features/first"] and not store.exists("features/second")
        _assert_clean(store)
        store.delete("features/first")                           # space again: the same write completes
        with store.writer("features/second", a.shape, a.dtype, chunks=(500, 128)) as w:
            for i in range(0, len(a), 500):
                w.append(a[i:i + 500])
        np.testing.assert_array_equal(store.get("features/second"), a)
        _assert_clean(store)


def test_pipeline_on_a_full_store_fails_naming_it_and_reruns_with_space(tmp_path):
    subset = stages.SubsetSpec(per_class=10)
    reference = pipeline.run_pair_direct(ArrayStore(tmp_path / "roomy"), "cnn_mnist", "digits", subset, ["logme"])
    with small_tmpfs(tmp_path / "small") as mnt:
        store = ArrayStore(mnt / "store.zarr")
        filler = _fill(mnt, leave=16 << 10)
        with pytest.raises(StoreFull) as info:
            pipeline.run_pair_direct(store, "cnn_mnist", "digits", subset, ["logme"])
        msg = str(info.value)
        assert str(store.root) in msg and "free of 2.0 MiB" in msg
        assert store.list("features") == []                     # the stage did not finish: no entry
        _assert_clean(store)
        filler.unlink()
        again = pipeline.run_pair_direct(store, "cnn_mnist", "digits", subset, ["logme"])
        assert again.errors == {} and set(again.scores) == {"logme"}
        # same process, same inputs: the same floating-point operations
        assert again.scores["logme"] == reference.scores["logme"]
        assert len(store.list("features")) == 1
        _assert_clean(store)


def test_injected_enospc_at_a_chunk_write(tmp_path, monkeypatch):
    """Without a mount: Zarr's local chunk writer raises OSError(ENOSPC) from its third chunk on."""
    import zarr.storage._local as local

    real_put, calls = local._put, {"chunks": 0}

    def put_until_full(path, value, *args, **kwargs):
        if "/c/" in Path(path).as_posix():
            calls["chunks"] += 1
            if calls["chunks"] >= 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_put(path, value, *args, **kwargs)

    store = ArrayStore(tmp_path / "store.zarr", codec="none")
    a = _rows()
    monkeypatch.setattr(local, "_put", put_until_full)
    with pytest.raises(StoreFull) as info:
        with store.writer("features/x", a.shape, a.dtype, chunks=(500, 128)) as w:
            for i in range(0, len(a), 500):
                w.append(a[i:i + 500])
    assert f"into {store.root / 'features'}" in str(info.value) and " free of " in str(info.value)
    assert store.list() == [] and store.info()["temporaries"] == 0
    monkeypatch.setattr(local, "_put", real_put)
    store.put("features/x", a)
    np.testing.assert_array_equal(store.get("features/x"), a)


@pytest.mark.slow
def test_zoorank_rank_on_a_full_store_exits_naming_it(tmp_path):
    """The command line: exit code 2 and a message naming the store and its free space; after
    freeing space the same command completes."""
    with small_tmpfs(tmp_path / "small") as mnt:
        store = mnt / "store.zarr"
        ArrayStore(store)
        filler = _fill(mnt, leave=16 << 10)
        cmd = [sys.executable, "-m", "zoorank.cli", "rank", "--zoo", "cnn_mnist,cnn_usps", "--dataset", "digits",
               "--per-class", "10", "--metrics", "lead,logme", "--store", str(store), "--home", str(tmp_path / "zr")]
        env = {**os.environ}
        env.pop("PREFECT_API_URL", None)
        full = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert full.returncode == 2, full.stdout[-2000:] + full.stderr[-3000:]
        assert f"zoorank: error: cache store {store} is full" in full.stderr and "free of 2.0 MiB" in full.stderr
        filler.unlink()
        ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-3000:]
        _assert_clean(ArrayStore(store))
