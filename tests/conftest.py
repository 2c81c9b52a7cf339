"""Shared fixtures: a real temporary Prefect server for the session, isolated locations."""
from __future__ import annotations

import os

import pytest

from zoorank.config import OFFLINE_DEFAULTS

for _name, _value in OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
# rankings in tests do not learn from the shipped (growing) ground truth unless a test asks for it
# (zoorank.pipeline.history; tests/integration/test_combined_ranking.py sets its own)
os.environ.setdefault("ZOORANK_HISTORY", "none")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One temporary Prefect server (SQLite) for every flow test of the session."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def settings(tmp_path):
    """Isolated zoorank locations: a local Zarr store and a SQLite MLflow under tmp_path."""
    from zoorank.config import Settings

    return Settings.from_env(env={}, home=tmp_path / "zr")
