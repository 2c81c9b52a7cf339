"""A shared store mounted read-only (a team cache): zoorank reads what is there, computes the
missing stages into the user's own writable store, says so, and never writes to the team store.

The read-only store is a real read-only bind mount (``mount --bind`` + ``mount -o
remount,ro,bind``; root only). As non-root a ``chmod -R a-w`` copy stands in; as root without
mount permission the tests skip, naming the reason (root writes through permissions)."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoorank.api import rank
from zoorank.config import Settings
from zoorank.storage.arrays import ArrayStore, StoreError, StoreNotWritable
from zoorank.storage.layered import LayeredStore, open_read_store, open_store, resolve_read_only_store

pytestmark = pytest.mark.integration

TEAM_ZOO = ["cnn_mnist", "cnn_usps"]
USER_ZOO = ["cnn_mnist", "cnn_usps", "cnn_digitrec"]
TEAM_METRICS = ["lead", "logme"]
USER_METRICS = ["lead", "logme", "knn"]


def _writes_fail(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except OSError as e:
        return e.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    (folder / "probe").unlink()
    return False


@contextlib.contextmanager
def read_only_view(src: Path, dst: Path):
    """``dst`` shows ``src`` read-only: a read-only bind mount as root, a ``chmod -R a-w`` copy
    otherwise; skips the test when neither makes writes fail."""
    dst.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        bind = subprocess.run(["mount", "--bind", str(src), str(dst)], capture_output=True, text=True)
        if bind.returncode != 0:
            pytest.skip(f"a read-only bind mount is not permitted here ({bind.stderr.strip()}); running as root, "
                        "chmod alone would not stop writes")
        try:
            ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(dst)], capture_output=True, text=True)
            if ro.returncode != 0 or not _writes_fail(dst):
                pytest.skip(f"cannot remount {dst} read-only ({ro.stderr.strip()})")
            yield dst
        finally:
            if subprocess.run(["umount", str(dst)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(dst)], capture_output=True)
        return
    shutil.rmtree(dst)
    shutil.copytree(src, dst)
    for dirpath, dirs, files in os.walk(dst):
        for name in files + dirs:
            os.chmod(os.path.join(dirpath, name), 0o555 if name in dirs else 0o444)
    os.chmod(dst, 0o555)
    try:
        if not _writes_fail(dst):
            pytest.skip("chmod -R a-w did not make the copy read-only")
        yield dst
    finally:
        for dirpath, dirs, _files in os.walk(dst):
            os.chmod(dirpath, 0o755)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _truncate_a_chunk(store: ArrayStore, key: str) -> None:
    chunk = next(p for p in sorted((store.path(key) / "c").rglob("*")) if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[:-3])


def test_layered_store_reads_below_and_writes_only_in_front(tmp_path):
    team = ArrayStore(tmp_path / "team")
    shared, damaged = np.arange(12.0).reshape(3, 4), np.ones((5, 2))
    team.put("features/shared", shared)
    team.put("features/damaged", damaged)
    team.put_record("scores/shared", {"score": 0.5})
    _truncate_a_chunk(team, "features/damaged")
    with read_only_view(team.root, tmp_path / "team_ro") as ro:
        before = _snapshot(ro)
        store = LayeredStore(ArrayStore(tmp_path / "mine"), [open_read_store(ro)])
        assert store.exists("features/shared") and store.layer_of("features/shared").root == ro
        np.testing.assert_array_equal(store.get("features/shared"), shared)
        assert store.checksum("features/shared") == team.checksum("features/shared")
        assert store.get_record("scores/shared") == {"score": 0.5}
        store.put("features/shared", shared)                  # already below: nothing is written
        assert store.write_store.list() == []
        # a damaged entry below cannot be repaired there: it reads as a miss and is rebuilt in front
        assert not store.exists("features/damaged")
        store.put("features/damaged", damaged)
        assert store.layer_of("features/damaged").root == store.root
        np.testing.assert_array_equal(store.get("features/damaged"), damaged)
        store.put("features/new", shared * 2)
        store.put_record("scores/new", {"score": 1.0})
        assert store.write_store.list() == ["features/damaged", "features/new"]
        assert store.list() == ["features/damaged", "features/new", "features/shared"]
        assert store.write_store.list_records() == ["scores/new"]
        assert _snapshot(ro) == before                        # the team store is untouched
        with pytest.raises(StoreNotWritable):
            ArrayStore(ro).check_writable()


def test_missing_or_foreign_read_store_is_named(tmp_path):
    with pytest.raises(StoreError, match=f"read store {tmp_path / 'nowhere'} does not exist"):
        open_store(Settings.from_env(env={}, home=tmp_path / "zr", read_store=str(tmp_path / "nowhere")))
    settings = Settings.from_env(env={"ZOORANK_READ_STORE": str(tmp_path / "team")}, home=tmp_path / "zr")
    assert settings.read_store == tmp_path / "team"
    assert settings.as_env()["ZOORANK_READ_STORE"] == str(tmp_path / "team")


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.slow
def test_rank_reads_a_read_only_team_store_and_computes_the_rest_into_its_own(prefect_server, tmp_path):
    """Three in-process rankings (about a minute on 2 cores): the team's, the user's with
    ``read_store=``, and the user's with the read-only store passed as ``store``."""
    team = Settings.from_env(env={}, home=tmp_path / "team")
    team_table = rank(TEAM_ZOO, "digits", per_class=6, metrics=TEAM_METRICS, settings=team, track=False,
                      workers=1).set_index("model")
    with read_only_view(team.store, tmp_path / "team_ro") as ro:
        before = _snapshot(ro)
        mine = Settings.from_env(env={}, home=tmp_path / "mine")
        table = rank(USER_ZOO, "digits", per_class=6, metrics=USER_METRICS, settings=mine, read_store=str(ro),
                     track=False, workers=1).set_index("model")
        assert _snapshot(ro) == before                                 # nothing written to the team store
        # the team's pairs: every team stage is a cache hit (3 stages + 2 scores), only knn is new
        assert table.loc[TEAM_ZOO, "cached_stages"].tolist() == [5, 5]
        assert table.loc["cnn_digitrec", "cached_stages"] == 0
        np.testing.assert_array_equal(table.loc[TEAM_ZOO, TEAM_METRICS].to_numpy(),
                                      team_table.loc[TEAM_ZOO, TEAM_METRICS].to_numpy())
        own = ArrayStore(mine.store)
        assert len(own.list("features")) == 1 and len(ArrayStore(ro).list("features")) == 2

        # the read-only store given as --store: read through, new stages into <home>/store.zarr, said so
        naive = Settings.from_env(env={}, home=tmp_path / "naive", store=str(ro))
        said = _Collect()
        logging.getLogger("zoorank.storage.layered").addHandler(said)
        try:
            table2 = rank(USER_ZOO, "digits", per_class=6, metrics=USER_METRICS, settings=naive, track=False,
                          workers=1).set_index("model")
        finally:
            logging.getLogger("zoorank.storage.layered").removeHandler(said)
        assert any(f"cache store {ro} is read-only (Read-only file system)" in m
                   and str(naive.home / "store.zarr") in m for m in said.messages), said.messages
        assert _snapshot(ro) == before
        assert len(ArrayStore(naive.home / "store.zarr").list("features")) == 1
        # an independent computation of the missing pair in another store agrees (same process: exactly)
        np.testing.assert_array_equal(table2[USER_METRICS].to_numpy(), table.loc[table2.index, USER_METRICS].to_numpy())


def test_read_only_store_that_is_also_the_home_store_fails_naming_the_fix(tmp_path):
    home = tmp_path / "home"
    ArrayStore(home / "store.zarr")
    with read_only_view(home, tmp_path / "home_ro") as ro:
        with pytest.raises(StoreNotWritable, match="--read-store"):
            resolve_read_only_store(Settings.from_env(env={}, home=ro))


@pytest.mark.slow
def test_cli_read_store_flag_says_so(tmp_path):
    team = tmp_path / "team"
    base = [sys.executable, "-m", "zoorank.cli", "rank", "--zoo", "cnn_mnist", "--dataset", "digits",
            "--per-class", "6", "--metrics", "lead,logme", "--no-track"]
    env = {**os.environ}
    env.pop("PREFECT_API_URL", None)
    first = subprocess.run(base + ["--home", str(team)], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    with read_only_view(team / "store.zarr", tmp_path / "team_ro") as ro:
        mine = tmp_path / "mine"
        res = subprocess.run(base + ["--home", str(mine), "--read-store", str(ro)], env=env,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        assert f"reading also from {ro}, read-only; new stages go to {mine / 'store.zarr'}" in res.stderr
