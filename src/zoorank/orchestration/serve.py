"""``zoorank serve``: re-rank a zoo file on a cron schedule against a real Prefect server.

    prefect server start                                   # terminal 1 (http://127.0.0.1:4200)
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    zoorank serve --zoo my_zoo.yaml --dataset digits --cron "0 3 * * *"   # terminal 2

The serving process registers the deployment ``rerank/<name>`` with the server and then polls
it for scheduled runs, executing each in a subprocess (``flow.serve`` semantics via
:func:`prefect.serve`). The temporary server that plain ``zoorank rank`` starts cannot
schedule (docs/operations.md), hence PREFECT_API_URL is required. The deployment itself is built by
:func:`zoorank.orchestration.flows.rerank.build_deployment` (the same definition the tests check).
"""
from __future__ import annotations

import os

from zoorank.config import Settings, apply_offline_defaults


class NoPrefectServer(ValueError):
    """PREFECT_API_URL is unset: scheduling needs a real ``prefect server start``."""


def require_api_url(env=None) -> str:
    env = os.environ if env is None else env
    url = (env.get("PREFECT_API_URL") or "").strip()
    if not url:
        raise NoPrefectServer(
            "zoorank serve needs a real Prefect server (the temporary one cannot run schedules): "
            "run `prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api")
    return url


def serve(zoo: str, datasets: list[str], *, cron: str = "0 3 * * *", name: str = "rerank-zoo",
          timezone: str | None = None, settings: Settings | None = None, run_now: bool = False,
          **params) -> None:
    """Register the rerank deployment for ``zoo`` and serve it until interrupted."""
    require_api_url()
    settings = settings or Settings.from_env()
    apply_offline_defaults(settings)
    from pathlib import Path

    if not Path(zoo).is_file():
        raise FileNotFoundError(f"zoo file not found: {zoo}")
    from zoorank.zoo import load_zoo

    load_zoo(zoo)   # fail now, with a line number, rather than at 3 a.m.
    from prefect import serve as prefect_serve

    from zoorank.orchestration.flows.rerank import build_deployment

    params.setdefault("home", str(settings.home))
    params.setdefault("store", str(settings.store))
    params.setdefault("tracking_uri", settings.tracking_uri)
    deployment = build_deployment(zoo, datasets, cron=cron, name=name, timezone=timezone, **params)
    if run_now:
        from prefect.deployments import run_deployment

        deployment_id = deployment.apply()
        run_deployment(deployment_id, timeout=0)
    prefect_serve(deployment)
