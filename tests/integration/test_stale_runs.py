"""MLflow parent runs left RUNNING by a killed process (SQLite MLflow, real processes).

A ranking records its owners (process identities) on its parent run; a rerun of the same logical
ranking adopts the newest stale run and completes it, ends every other stale run of that key as
KILLED, joins (never ends) a run whose owner lives, and a FAILED status never overwrites a run
that another process FINISHED."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from zoorank.config import sqlite_uri
from zoorank.support.process_identity import ProcessIdentity
from zoorank.storage.tracking import (
    TAG_ENDED_BY, TAG_KIND, TAG_LOGICAL_KEY, TAG_OWNERS, TAG_PARENT, TAG_RECOVERED, Tracker, logical_key,
)

pytestmark = pytest.mark.integration

KILLED_OWNER = """
import os, signal, sys
from zoorank.storage.tracking import Tracker
t = Tracker(sys.argv[1], "stale", None)   # the experiment exists already
run = t.start_ranking("killed ranking", {"a": 1}, logical_key=sys.argv[2])
run.log_pair("m1", "d", scores={"lead": 1.0})
print(run.run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)      # kill -9 with the parent run RUNNING
"""


@pytest.fixture(scope="module")
def tracker(tmp_path_factory) -> Tracker:
    """One database for the module (creating one costs seconds); every test uses its own key."""
    home = tmp_path_factory.mktemp("stale")
    return Tracker(sqlite_uri(home / "mlflow.db"), "stale", home / "artifacts")


def _dead_identity() -> ProcessIdentity:
    """The identity a process had: it has exited, so the pid is gone (or names another process)."""
    proc = subprocess.Popen(["sleep", "5"])
    me = ProcessIdentity.of(proc.pid)
    proc.kill()
    proc.wait()
    assert me.alive() is False
    return me


def _orphan_run(tracker: Tracker, key: str, owner: ProcessIdentity) -> str:
    """A parent run as a process that died while logging leaves it: RUNNING, with one RUNNING pair."""
    run = tracker.client.create_run(tracker.experiment_id, run_name="orphan", tags={
        TAG_KIND: "ranking", TAG_LOGICAL_KEY: key, TAG_OWNERS: str(owner)})
    tracker.client.create_run(tracker.experiment_id, run_name="m @ d", tags={
        TAG_KIND: "pair", TAG_PARENT: run.info.run_id})
    return run.info.run_id


def test_rerun_adopts_the_run_of_a_process_killed_with_sigkill(tracker):
    key = logical_key(case="killed")
    child = subprocess.run([sys.executable, "-c", KILLED_OWNER, tracker.tracking_uri, key],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    killed_id = child.stdout.split()[0]
    left = tracker.get_run(killed_id)
    assert left.info.status == "RUNNING" and tracker.is_stale(left)
    with tracker.start_ranking("killed ranking", {"a": 1}, logical_key=key) as again:
        assert again.reused and not again.was_finished and again.run_id == killed_id
        again.log_pair("m1", "d", scores={"lead": 1.0})
        again.log_pair("m2", "d", scores={"lead": 2.0})
    done = tracker.get_run(killed_id)
    assert done.info.status == "FINISHED"
    assert done.data.tags[TAG_RECOVERED] == left.data.tags[TAG_OWNERS]   # names the killed process
    assert done.data.tags[TAG_OWNERS] == str(ProcessIdentity.of())        # the dead owner is dropped
    assert len(tracker.find_pairs(parent_run_id=killed_id)) == 2          # m1 logged once, not twice


def test_stale_run_beside_a_finished_one_is_marked_killed(tracker):
    key = logical_key(case="stale-and-finished")
    with tracker.start_ranking("done", logical_key=key) as first:
        first.log_pair("m", "d", scores={"lead": 1.0})
    dead = _dead_identity()
    orphan = _orphan_run(tracker, key, dead)
    again = tracker.start_ranking("done", logical_key=key)
    assert again.was_finished and again.run_id == first.run_id
    ended = tracker.get_run(orphan)
    assert ended.info.status == "KILLED" and f"owners {dead} are dead" in ended.data.tags[TAG_ENDED_BY]
    children = tracker._search(f"tags.`{TAG_PARENT}` = '{orphan}'")
    assert children and all(r.info.status == "KILLED" for r in children)
    statuses = sorted(r.info.status for r in tracker._runs_by_key(key))
    assert statuses == ["FINISHED", "KILLED"]                             # exactly one finished parent


def test_new_run_ends_stale_runs_of_its_key_and_the_newest_stale_one_is_adopted(tracker):
    key = logical_key(case="two-stale")
    older, newer = _orphan_run(tracker, key, _dead_identity()), _orphan_run(tracker, key, _dead_identity())
    with tracker.start_ranking("r", logical_key=key) as run:
        assert run.run_id == newer
    assert tracker.get_run(older).info.status == "KILLED" and tracker.get_run(newer).info.status == "FINISHED"
    third = _orphan_run(tracker, key, _dead_identity())
    forced = tracker.start_ranking("r", logical_key=key, reuse=False)     # --new-run still cleans up
    forced.finish()
    assert tracker.get_run(third).info.status == "KILLED"


def test_run_of_a_live_owner_is_joined_not_ended(tracker):
    key = logical_key(case="live")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = ProcessIdentity.of(sleeper.pid)
        run = tracker.client.create_run(tracker.experiment_id, run_name="live", tags={
            TAG_KIND: "ranking", TAG_LOGICAL_KEY: key, TAG_OWNERS: str(live)})
        assert not tracker.is_stale(tracker.get_run(run.info.run_id))
        joined = tracker.start_ranking("live", logical_key=key)
        assert joined.run_id == run.info.run_id
        owners = tracker.get_run(run.info.run_id).data.tags[TAG_OWNERS].split(",")
        assert owners == [str(live), str(ProcessIdentity.of())]
        assert TAG_RECOVERED not in tracker.get_run(run.info.run_id).data.tags
        # another host's owner cannot be checked from here: never stale
        other = ProcessIdentity("elsewhere", "boot", 1, 1)
        assert other.alive() is None
        foreign = tracker.client.create_run(tracker.experiment_id, tags={
            TAG_KIND: "ranking", TAG_LOGICAL_KEY: key, TAG_OWNERS: str(other)})
        assert not tracker.is_stale(tracker.get_run(foreign.info.run_id))
    finally:
        sleeper.kill()
        sleeper.wait()


def test_failure_never_overwrites_a_finished_run(tracker):
    key = logical_key(case="late-failure")
    a = tracker.start_ranking("shared", logical_key=key)
    b = tracker.start_ranking("shared", logical_key=key)        # a second process joining the same run
    assert a.run_id == b.run_id
    a.finish()
    b.finish("FAILED")
    assert tracker.get_run(a.run_id).info.status == "FINISHED"


def test_concurrent_creation_on_another_machine_keeps_the_oldest(tracker):
    """Two machines cannot share a lock: both may create a parent. The younger one, seeing the
    older right after creating its own, deletes itself and joins the older."""
    key = logical_key(case="rival")
    rival = tracker.client.create_run(tracker.experiment_id, run_name="rival", tags={
        TAG_KIND: "ranking", TAG_LOGICAL_KEY: key, TAG_OWNERS: str(ProcessIdentity("elsewhere", "b", 7, 7))})

    class Racing(Tracker):
        """The first search happens before the rival's run exists (the race window)."""
        searches = 0

        def _runs_by_key(self, k, kind="ranking"):
            Racing.searches += 1
            return [] if Racing.searches == 1 else super()._runs_by_key(k, kind)

    racing = Racing(tracker.tracking_uri, "stale", None)
    run = racing.start_ranking("mine", logical_key=key)
    assert run.run_id == rival.info.run_id and run.reused
    active = tracker._runs_by_key(key)
    assert [r.info.run_id for r in active] == [rival.info.run_id]
    deleted = [r for r in tracker.client.search_runs([tracker.experiment_id], run_view_type=3)
               if r.data.tags.get(TAG_LOGICAL_KEY) == key and r.info.lifecycle_stage == "deleted"]
    assert len(deleted) == 1 and deleted[0].info.run_id != rival.info.run_id
