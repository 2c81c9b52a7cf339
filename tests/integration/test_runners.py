"""The temporary-server settings of zoorank.orchestration.runners: real Prefect settings, no stubs."""
from __future__ import annotations

import os

import pytest

from zoorank.orchestration.runners import TEMPORARY_SERVER_ENV, flow_settings

pytestmark = pytest.mark.integration


def test_temporary_server_env_turns_real_prefect_services_off(monkeypatch):
    """Every variable names a service Prefect knows (a renamed setting would silently do
    nothing): with them set, Prefect's own settings report each service disabled."""
    from prefect.settings.models.root import Settings as PrefectSettings

    defaults = PrefectSettings().server.services
    for name in TEMPORARY_SERVER_ENV:
        monkeypatch.setenv(name, "false")
    services = PrefectSettings().server.services
    for name in TEMPORARY_SERVER_ENV:
        attr = name.removeprefix("PREFECT_SERVER_SERVICES_").removesuffix("_ENABLED").lower()
        assert getattr(defaults, attr).enabled is True, attr
        assert getattr(services, attr).enabled is False, attr


def test_flow_settings_drop_heartbeats_only_for_a_temporary_server(prefect_server, monkeypatch):
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is not None
    with flow_settings():          # the session's test server is a temporary one
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is None
        assert not any(os.environ.get(k) for k in TEMPORARY_SERVER_ENV)   # never in this process
    assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is not None
    # a configured real server keeps its heartbeats (crash detection)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with flow_settings():
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is not None
