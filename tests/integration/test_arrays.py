"""ArrayStore on a real Zarr v3 folder: round trips, atomic publish, corruption, races, bad stores."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from zoorank.storage.arrays import (
    ArrayStore,
    CacheMiss,
    CorruptEntry,
    InvalidKey,
    StoreError,
    StoreNotWritable,
    array_sha256,
)
from zoorank.storage.keys import content_key

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> ArrayStore:
    return ArrayStore(tmp_path / "store.zarr")


def _features(n: int = 300, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=(n, d)), 0).astype(np.float32)


def _edit_meta(path: Path, fn) -> None:
    meta_file = path / "zarr.json"
    meta = json.loads(meta_file.read_text())
    fn(meta)
    meta_file.write_text(json.dumps(meta))


def _chunk_files(path: Path) -> list[Path]:
    return sorted(p for p in (path / "c").rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- round trips


def test_round_trip_float32_2d_and_int64_1d(store):
    a = _features()
    ka = content_key("features", model_id="m", dataset="d")
    path = store.put(ka, a, attrs={"model": "m"}, chunks=(64, 16))
    assert path == store.root / "features" / ka.split("/")[1]
    b = store.get(ka)
    assert b.dtype == np.float32 and b.shape == (300, 16)
    np.testing.assert_array_equal(a, b)
    assert store.attrs(ka) == {"model": "m"}
    assert store.checksum(ka) == array_sha256(a)

    labels = np.arange(-5, 995, dtype=np.int64)
    kl = "labels/abc"
    store.put(kl, labels)
    out = store.get(kl)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, labels)

    assert store.exists(ka) and store.exists(kl)
    assert store.list() == sorted([ka, kl])
    assert store.list(stage="labels") == [kl]
    info = store.info()
    assert info["entries"] == 2 and info["bytes"] > 0 and info["temporaries"] == 0
    assert set(info["stages"]) == {"features", "labels"}


def test_all_zero_and_empty_and_scalar_arrays(store):
    zeros = np.zeros((100, 8), dtype=np.float64)
    store.put("t/zeros", zeros, chunks=(10, 8))  # every chunk is the fill value; still written
    np.testing.assert_array_equal(store.get("t/zeros"), zeros)
    empty = np.zeros((0, 4), dtype=np.float32)
    store.put("t/empty", empty)
    assert store.get("t/empty").shape == (0, 4)
    store.put("t/scalar", np.float64(2.5))
    assert store.get("t/scalar") == 2.5
    store.put("t/bool", np.array([True, False]))
    np.testing.assert_array_equal(store.get("t/bool"), [True, False])


def test_zarr_and_dask_can_read_the_store(store):
    import zarr

    a = _features()
    store.put("features/x1", a, chunks=(100, 16))
    g = zarr.open_group(str(store.root), mode="r")
    np.testing.assert_array_equal(g["features/x1"][...], a)
    lazy = store.open_lazy("features/x1", verify=True)
    np.testing.assert_array_equal(lazy[10:20], a[10:20])
    da = pytest.importorskip("dask.array")
    np.testing.assert_allclose(da.from_zarr(lazy).sum(axis=0).compute(), a.sum(axis=0), rtol=1e-5)


def test_put_existing_valid_entry_is_kept_unless_overwrite(store):
    a = _features()
    p = store.put("features/k", a)
    mtime = (p / "zarr.json").stat().st_mtime_ns
    store.put("features/k", a + 1)  # same key = same content by contract: first entry kept
    assert (p / "zarr.json").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(store.get("features/k"), a)
    store.put("features/k", a + 1, overwrite=True)
    np.testing.assert_array_equal(store.get("features/k"), a + 1)


def test_writer_incremental_any_order(store):
    a = _features(250, 8)
    with store.writer("features/w", a.shape, a.dtype, chunks=(64, 8), attrs={"n": 250}) as w:
        w.write(200, a[200:])
        w.write(0, a[:100])
        w.write(100, a[100:200])
        assert not store.exists("features/w")  # nothing visible while writing
        assert store.list() == []
    np.testing.assert_array_equal(store.get("features/w"), a)
    assert store.attrs("features/w") == {"n": 250}
    with store.writer("features/w2", (5, 3), np.int64, chunks=(2, 3)) as w:
        for i in range(5):
            w.append(np.full((1, 3), i))
    assert store.get("features/w2")[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_writer_rejects_bad_batches(store):
    with pytest.raises(ValueError, match="overlap"):
        with store.writer("features/b", (10, 2), "float32") as w:
            w.write(0, np.zeros((5, 2)))
            w.write(4, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="does not fit"):
        with store.writer("features/b", (10, 2), "float32") as w:
            w.append(np.zeros((5, 3)))
    assert store.list() == [] and store.info()["temporaries"] == 0


# ----------------------------------------------------------------------------- atomic publish


def test_writer_that_raises_midway_leaves_nothing(store):
    a = _features()
    with pytest.raises(RuntimeError, match="boom"):
        with store.writer("features/crash", a.shape, a.dtype, chunks=(50, 16)) as w:
            w.append(a[:150])
            raise RuntimeError("boom")
    assert not store.exists("features/crash")
    with pytest.raises(CacheMiss, match="features/crash"):
        store.get("features/crash")
    assert store.list() == []
    assert store.info()["temporaries"] == 0


def test_writer_with_unwritten_rows_is_not_published(store):
    with pytest.raises(StoreError, match="100 of 300 rows unwritten"):
        with store.writer("features/partial", (300, 4), "float32", chunks=(50, 4)) as w:
            w.append(np.ones((200, 4), dtype=np.float32))
    assert not store.exists("features/partial")
    assert store.info()["temporaries"] == 0


def _killed_writer(root: str) -> None:
    s = ArrayStore(root)
    with s.writer("features/killed", (300, 16), "float32", chunks=(50, 16)) as w:
        w.append(np.ones((150, 16), dtype=np.float32))
        os._exit(9)  # like kill -9: no cleanup, no exception handling


def test_tmp_leftover_of_killed_writer_is_ignored_then_pruned(store):
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_killed_writer, args=(str(store.root),))
    p.start()
    p.join(60)
    assert p.exitcode == 9
    leftovers = list((store.root / "features").glob("killed.tmp-*"))
    assert len(leftovers) == 1
    assert store.list() == []
    assert not store.exists("features/killed")
    with pytest.raises(CacheMiss):
        store.get("features/killed")
    assert store.info()["temporaries"] == 1

    # a .tmp- copy of a perfectly valid entry is also ignored
    store.put("features/good", _features())
    fake = store.root / "features" / "good2.tmp-deadbeef-1-abc"
    shutil.copytree(store.path("features/good"), fake)
    assert store.list() == ["features/good"]

    report = store.prune()  # no selector: only stale temporaries go
    assert any("killed.tmp-" in t for t in report.removed_temporaries)
    assert not leftovers[0].exists()
    assert store.exists("features/good")
    # the foreign-host temporary is kept until it is old
    assert fake.exists()
    assert "features/good2.tmp-deadbeef-1-abc" in store.prune(tmp_max_age_s=-1).removed_temporaries
    assert not fake.exists()
    # the store recomputes the entry normally afterwards
    store.put("features/killed", np.ones((300, 16), dtype=np.float32))
    assert store.exists("features/killed")


# ----------------------------------------------------------------------------- corruption


@pytest.fixture
def entry(store):
    a = _features(400, 16)
    key = content_key("features", model_id="m", dataset="corrupt-me")
    path = store.put(key, a, chunks=(100, 16))
    assert len(_chunk_files(path)) == 4
    return store, key, path, a


def _assert_corrupt(store, key, match=None):
    with pytest.raises(CorruptEntry) as err:
        store.get(key)
    assert key in str(err.value) and str(store.path(key)) in str(err.value)
    if match:
        assert match in str(err.value)
    assert not store.exists(key)
    return err.value


def test_truncated_chunk_file_is_detected(entry):
    store, key, path, a = entry
    chunk = _chunk_files(path)[1]
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])
    _assert_corrupt(store, key)
    assert store.exists(key, deep=False)  # only reading the data reveals it
    # lazy readers fail on that chunk too (CRC32C per chunk), never returning wrong data
    lazy = store.open_lazy(key)
    with pytest.raises(ValueError, match="checksum"):
        lazy[150:160]


def test_altered_chunk_byte_is_detected(entry):
    store, key, path, a = entry
    chunk = _chunk_files(path)[2]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    _assert_corrupt(store, key, match="unreadable")


def test_swapped_chunk_files_are_detected_by_checksum(entry):
    store, key, path, a = entry
    c0, c1 = _chunk_files(path)[:2]
    b0, b1 = c0.read_bytes(), c1.read_bytes()
    c0.write_bytes(b1)
    c1.write_bytes(b0)  # each chunk still passes its own CRC
    _assert_corrupt(store, key, match="checksum")


def test_deleted_chunk_file_is_detected(entry):
    store, key, path, a = entry
    _chunk_files(path)[3].unlink()
    err = _assert_corrupt(store, key, match="chunk files present")
    assert "3 chunk files present, 4 expected" in err.reason
    assert not store.exists(key, deep=False)
    with pytest.raises(CorruptEntry):
        store.open_lazy(key)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m["attributes"]["zoorank"].update(shape=[401, 16]), "shape"),
        (lambda m: m["attributes"]["zoorank"].update(checksum="sha256:" + "0" * 64), "checksum"),
        (lambda m: m["attributes"]["zoorank"].update(complete=False), "completion marker"),
        (lambda m: m["attributes"].pop("zoorank"), "completion marker"),
        (lambda m: m["attributes"]["zoorank"].update(key="features/other"), "entry is for key"),
        (lambda m: m.update(shape=[300, 16]), "shape"),
        (lambda m: m.update(data_type="float64"), "dtype"),
        (lambda m: m["attributes"]["zoorank"].update(dtype="<f8"), "dtype"),
        (lambda m: m["attributes"]["zoorank"].pop("checksum"), "checksum"),
        (lambda m: m.update(node_type="group"), "does not describe an array"),
    ],
    ids=["attr-shape", "attr-checksum", "incomplete", "no-bookkeeping", "other-key",
         "meta-shape", "meta-dtype", "attr-dtype", "no-checksum", "not-array"],
)
def test_hand_edited_metadata_is_detected(entry, edit, match):
    store, key, path, a = entry
    _edit_meta(path, edit)
    _assert_corrupt(store, key, match=match)


def test_garbled_metadata_and_missing_metadata(entry):
    store, key, path, a = entry
    (path / "zarr.json").write_text('{"zarr_format": 3, "node_')
    _assert_corrupt(store, key, match="zarr.json is unreadable")
    (path / "zarr.json").unlink()
    _assert_corrupt(store, key, match="zarr.json is missing")


def test_expected_shape_and_dtype(entry):
    store, key, path, a = entry
    assert store.get(key, expect_shape=(400, 16), expect_dtype="float32").shape == (400, 16)
    with pytest.raises(CorruptEntry, match="dtype float32 is not the expected float64"):
        store.get(key, expect_dtype=np.float64)
    with pytest.raises(CorruptEntry, match="expected"):
        store.get(key, expect_shape=(400, 17))


def test_entry_copied_under_another_key_is_refused(entry, store):
    _, key, path, a = entry
    other = content_key("features", model_id="m", dataset="elsewhere")
    shutil.copytree(path, store.path(other))
    with pytest.raises(CorruptEntry, match="entry is for key"):
        store.get(other)


def test_corrupt_entry_is_replaced_by_put(entry):
    store, key, path, a = entry
    _chunk_files(path)[0].unlink()
    assert not store.exists(key)
    store.put(key, a, chunks=(100, 16))  # the pipeline's "recompute"
    np.testing.assert_array_equal(store.get(key), a)
    assert store.info()["temporaries"] == 0
    report = store.prune(invalid=True)
    assert report.removed_entries == []


def test_prune_invalid_removes_damaged_entries(entry):
    store, key, path, a = entry
    _edit_meta(path, lambda m: m["attributes"]["zoorank"].update(complete=False))
    assert store.prune(invalid=True).removed_entries == [key]
    assert store.list() == []


# ----------------------------------------------------------------------------- concurrency


def _racing_writer(root: str, key: str, barrier, seed: int, out) -> None:
    s = ArrayStore(root)
    a = np.random.default_rng(0).normal(size=(2000, 64)).astype(np.float32)  # same content
    with s.writer(key, a.shape, a.dtype, chunks=(256, 64)) as w:
        w.append(a)
        barrier.wait(30)  # both temporaries are complete: publish at the same moment
    out.put(str(s.path(key)))


def test_two_processes_write_the_same_key(store):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    key = content_key("features", model_id="race", dataset="d")
    procs = [ctx.Process(target=_racing_writer, args=(str(store.root), key, barrier, i, out)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
    assert [p.exitcode for p in procs] == [0, 0]
    assert out.get(timeout=5) == out.get(timeout=5) == str(store.path(key))
    expected = np.random.default_rng(0).normal(size=(2000, 64)).astype(np.float32)
    np.testing.assert_array_equal(store.get(key), expected)
    assert store.list() == [key]
    assert store.info()["temporaries"] == 0  # the loser discarded its copy


def _putter(root: str, i: int, barrier) -> None:
    s = ArrayStore(root)
    barrier.wait(30)
    for j in range(5):
        s.put(f"features/p{i}-{j}", np.full((50, 4), i * 10 + j, dtype=np.int64))
        s.put("features/shared", np.arange(200, dtype=np.int64))


def test_processes_writing_different_and_shared_keys(store):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_putter, args=(str(store.root), i, barrier)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(store.list()) == 11
    for i in range(2):
        for j in range(5):
            assert store.get(f"features/p{i}-{j}")[0, 0] == i * 10 + j
    np.testing.assert_array_equal(store.get("features/shared"), np.arange(200))
    assert store.info()["temporaries"] == 0


# ----------------------------------------------------------------------------- bad stores and keys


def test_store_under_a_regular_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "some_file"
    blocker.write_text("not a folder")
    root = blocker / "sub" / "store.zarr"
    with pytest.raises(StoreNotWritable) as err:
        ArrayStore(root)
    assert str(root) in str(err.value)
    assert isinstance(err.value, StoreError)


def test_read_only_store_refuses_writes(tmp_path):
    rw = ArrayStore(tmp_path / "s.zarr")
    rw.put("features/a", np.ones(3))
    ro = ArrayStore(tmp_path / "s.zarr", read_only=True)
    np.testing.assert_array_equal(ro.get("features/a"), np.ones(3))
    with pytest.raises(StoreNotWritable, match="read-only"):
        ro.put("features/b", np.ones(3))
    missing = ArrayStore(tmp_path / "nothing.zarr", read_only=True)
    assert missing.list() == [] and missing.info()["entries"] == 0
    with pytest.raises(CacheMiss):
        missing.get("features/a")


@pytest.mark.parametrize(
    "bad", ["", "../x", "a/../b", "features/.hidden", "a/b.tmp-1", "a/x.json", "a//b", "a/c", "a b", "/abs"]
)
def test_invalid_keys(store, bad):
    with pytest.raises(InvalidKey):
        store.put(bad, np.ones(2))


def test_key_cannot_nest_inside_an_entry(store):
    store.put("features/a", np.ones(2))
    with pytest.raises(StoreError, match="not a group"):
        store.put("features/a/b", np.ones(2))


def test_non_numeric_arrays_are_refused(store):
    with pytest.raises(TypeError, match="numeric"):
        store.put("features/s", np.array(["a", "b"]))
    with pytest.raises(TypeError, match="numeric"):
        store.put("features/o", np.array([{}, 1], dtype=object))


# ----------------------------------------------------------------------------- records, delete, prune


def test_json_records(store):
    key = content_key("scores", model_id="m", dataset="d")
    path = store.put_record(key, {"lead": -1.25, "logme": float("nan"), "n": 3})
    value = store.get_record(key)
    assert value["lead"] == -1.25 and value["n"] == 3 and np.isnan(value["logme"])
    assert store.has_record(key) and store.list_records() == [key]
    assert store.list() == []  # records are not array entries
    doc = json.loads(path.read_text())
    doc["value"]["lead"] = 9.0
    path.write_text(json.dumps(doc))
    with pytest.raises(CorruptEntry, match="checksum"):
        store.get_record(key)
    path.write_text("{")
    with pytest.raises(CorruptEntry):
        store.get_record(key)
    assert store.delete_record(key)
    with pytest.raises(CacheMiss):
        store.get_record(key)


def test_delete_and_prune_by_keep_and_age(store):
    for i in range(4):
        store.put(f"features/e{i}", np.full(3, i))
    store.put_record("scores/r1", {"x": 1})
    assert store.delete("features/e3") and not store.delete("features/e3")
    assert store.list() == ["features/e0", "features/e1", "features/e2"]

    dry = store.prune(keep={"features/e0"}, dry_run=True)
    assert sorted(dry.removed_entries) == ["features/e1", "features/e2"]
    assert len(store.list()) == 3
    report = store.prune(keep={"features/e0", "scores/r1"}, stage="features")
    assert sorted(report.removed_entries) == ["features/e1", "features/e2"] and report.freed_bytes > 0
    assert store.list() == ["features/e0"] and store.list_records() == ["scores/r1"]

    assert store.prune(older_than=3600).removed_entries == []
    time.sleep(0.05)
    report = store.prune(older_than=0.01)
    assert report.removed_entries == ["features/e0"] and report.removed_records == ["scores/r1"]
    assert store.info()["entries"] == 0


# ----------------------------------------------------------------------------- stored format kept

LEGACY_STORE = Path(__file__).resolve().parents[1] / "data" / "store_953725b"


def _legacy_arrays() -> dict[str, np.ndarray]:
    """What tests/data/store_953725b holds: written by the single-module arrays.py of commit
    953725b (before the storage/arrays/ package split) with these exact calls."""
    return {
        "features/legacy": np.arange(7 * 3, dtype=np.float32).reshape(7, 3) / 4 - 1,
        "labels/legacy": np.array([0, 1, 2, 0, 1, 2, 0], dtype=np.int64),
        "features/streamed": np.repeat(np.arange(5)[:, None] * 0.5, 2, axis=1).astype(np.float64),
    }


def test_a_store_written_before_the_package_split_reads_and_verifies(tmp_path):
    root = tmp_path / "old.zarr"
    shutil.copytree(LEGACY_STORE, root)
    old = ArrayStore(root, read_only=True)
    assert sorted(old.list()) == sorted(_legacy_arrays())
    assert old.list_records() == ["scores/legacy"]
    for key, expected in _legacy_arrays().items():
        assert old.exists(key)  # deep: marker, grid, chunk files, CRC32C, SHA-256
        got = old.get(key)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
        assert old.checksum(key) == array_sha256(expected) == old.verify(key)["checksum"]
    assert old.get_record("scores/legacy") == {"score": 0.25, "metric": "logme"}


def test_the_split_writes_the_same_entries_as_before(tmp_path):
    # same bookkeeping fields and values (but the write's time and writer) and the same chunk bytes
    new = ArrayStore(tmp_path / "new.zarr")
    new.put("features/legacy", _legacy_arrays()["features/legacy"], chunks=(3, 3))
    with new.writer("features/streamed", (5, 2), np.float64, chunks=(2, 2)) as w:
        for i in range(5):
            w.append(np.full((1, 2), i * 0.5))
    for key in ("features/legacy", "features/streamed"):
        before = json.loads((LEGACY_STORE / key / "zarr.json").read_text())
        after = json.loads((new.path(key) / "zarr.json").read_text())
        volatile = {"created", "created_unix", "writer"}
        strip = lambda meta: {**meta, "attributes": {"zoorank": {k: v for k, v in meta["attributes"]["zoorank"].items()
                                                                 if k not in volatile}}}
        assert strip(after) == strip(before)
        assert set(after["attributes"]["zoorank"]) == set(before["attributes"]["zoorank"])
        old_chunks = {p.relative_to(LEGACY_STORE / key): p.read_bytes() for p in _chunk_files(LEGACY_STORE / key)}
        new_chunks = {p.relative_to(new.path(key)): p.read_bytes() for p in _chunk_files(new.path(key))}
        assert new_chunks == old_chunks
