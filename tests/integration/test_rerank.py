"""Scheduled incremental re-ranking: the deployment definition, and a zoo file that grows
between two runs of the rerank flow (real Prefect temporary server, Zarr store, SQLite MLflow)."""
from __future__ import annotations

import json

import mlflow
import pytest

from zoorank.orchestration.flows.rerank import (TAG_ZOO_FILE, build_deployment, compare_rankings, full_stage_count,
                                  rerank_flow, zoo_key)

pytestmark = pytest.mark.integration

METRICS = ["lead", "logme", "knn"]


def _write_zoo(path, models):
    path.write_text("".join(f"- {m}\n" for m in models), encoding="utf-8")


def test_deployment_definition_has_cron_schedule_and_parameters(tmp_path):
    zoo = tmp_path / "zoo.yaml"
    _write_zoo(zoo, ["cnn_mnist"])
    dep = build_deployment(str(zoo), ["digits", "mnist5k"], cron="*/15 * * * *", name="nightly",
                           per_class=5, metrics=METRICS, workers=2)
    assert dep.name == "nightly"
    assert dep.flow_name == "rerank"
    assert [s.schedule.cron for s in dep.schedules] == ["*/15 * * * *"]
    assert dep.parameters == {"zoo": zoo_key(str(zoo)), "datasets": ["digits", "mnist5k"],
                              "per_class": 5, "metrics": METRICS, "workers": 2}
    # every parameter must be accepted by the flow's schema (a worker validates them)
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(rerank_flow.fn).model_dump()
    assert set(dep.parameters) <= set(schema["properties"])
    assert set(schema["required"]) == {"zoo", "datasets"}
    assert dep.enforce_parameter_schema
    assert "zoorank" in dep.tags
    # the entrypoint a worker imports
    assert dep.entrypoint.endswith("rerank.py:rerank_flow")


def test_prefect_yaml_deployment_is_valid_for_its_flow():
    """deployments/prefect.yaml (what `prefect deploy` reads): its entrypoint imports the rerank
    flow, its parameters pass the flow's schema, its cron parses, its zoo file exists."""
    import importlib.util
    from pathlib import Path

    import yaml
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.utilities.callables import parameter_schema

    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "deployments" / "prefect.yaml").read_text())
    (dep,) = doc["deployments"]
    path, _, func = dep["entrypoint"].partition(":")
    spec = importlib.util.spec_from_file_location("entrypoint_under_test", root / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flow_obj = getattr(module, func)
    assert flow_obj.name == "rerank"
    schema = parameter_schema(flow_obj.fn).model_dump()
    assert set(dep["parameters"]) <= set(schema["properties"])
    assert set(schema["required"]) <= set(dep["parameters"])
    flow_obj.validate_parameters(dep["parameters"])          # types, as a worker checks them
    (sched,) = dep["schedules"]
    assert CronSchedule(cron=sched["cron"], timezone=sched["timezone"]).cron == "0 3 * * *"
    assert (root / dep["parameters"]["zoo"]).is_file()
    assert dep["work_pool"]["name"] and doc["prefect-version"] == __import__("prefect").__version__


def test_compare_rankings_reports_new_removed_and_moved():
    import pandas as pd

    old = pd.DataFrame({"dataset": ["d"] * 3, "model": ["a", "b", "c"], "rank": [1, 2, 3]})
    new = pd.DataFrame({"dataset": ["d"] * 3, "model": ["x", "a", "b"], "rank": [1, 2, 3]})
    ch = compare_rankings(old, new)
    assert ch["new_entries"] == [{"dataset": "d", "model": "x", "rank": 1}]
    assert ch["removed_entries"] == [{"dataset": "d", "model": "c", "old_rank": 3}]
    assert {(m["model"], m["old_rank"], m["new_rank"]) for m in ch["moved"]} == {("a", 1, 2), ("b", 2, 3)}
    assert compare_rankings(None, new)["new_entries"][0]["model"] == "x"


def test_rerank_on_growing_zoo_recomputes_exactly_the_new_pairs(prefect_server, settings, tmp_path):
    zoo = tmp_path / "zoo.yaml"
    common = dict(per_class=5, metrics=METRICS, home=str(settings.home), store=str(settings.store),
                  tracking_uri=settings.tracking_uri)
    _write_zoo(zoo, ["cnn_mnist", "cnn_usps"])
    first = rerank_flow(str(zoo), ["digits"], **common)
    assert first["previous_run_id"] is None
    assert sorted(first["recomputed_pairs"]) == [["digits", "cnn_mnist"], ["digits", "cnn_usps"]]
    assert {e["model"] for e in first["new_entries"]} == {"cnn_mnist", "cnn_usps"}

    # the zoo file gains a model: only (digits, cnn_digitrec) computes
    _write_zoo(zoo, ["cnn_mnist", "cnn_usps", "cnn_digitrec"])
    second = rerank_flow(str(zoo), ["digits"], **common)
    assert second["previous_run_id"] == first["run_id"]
    assert second["run_id"] != first["run_id"]
    assert second["recomputed_pairs"] == [["digits", "cnn_digitrec"]]
    cached = {r["model"]: r["cached_stages"] for r in second["table"]}
    full = full_stage_count(METRICS)
    assert cached == {"cnn_mnist": full, "cnn_usps": full, "cnn_digitrec": 0}
    assert [(e["dataset"], e["model"]) for e in second["new_entries"]] == [("digits", "cnn_digitrec")]
    assert second["removed_entries"] == []
    # positions: every moved entry is reported with old and new rank
    old_rank = {r["model"]: r["rank"] for r in first["table"]}
    new_rank = {r["model"]: r["rank"] for r in second["table"]}
    expected_moved = {m for m in old_rank if old_rank[m] != new_rank[m]}
    assert {m["model"] for m in second["moved"]} == expected_moved

    # MLflow: the new run carries the zoo-file tag, the previous run id and changes.json
    client = mlflow.MlflowClient(settings.tracking_uri)
    run = client.get_run(second["run_id"])
    assert run.data.tags[TAG_ZOO_FILE] == zoo_key(str(zoo))
    assert run.data.tags["zoorank.previous_run"] == first["run_id"]
    assert run.data.metrics["changes.new_entries"] == 1
    assert run.data.metrics["recomputed_pairs"] == 1
    local = client.download_artifacts(second["run_id"], "changes.json", dst_path=str(tmp_path))
    with open(local) as fh:
        report = json.load(fh)
    assert report["new_entries"][0]["model"] == "cnn_digitrec"
    assert report["recomputed_pairs"] == [["digits", "cnn_digitrec"]]


def test_serve_refuses_without_a_real_prefect_server(tmp_path, monkeypatch, capsys):
    from zoorank.cli import main

    zoo = tmp_path / "zoo.yaml"
    _write_zoo(zoo, ["cnn_mnist"])
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["serve", "--zoo", str(zoo), "--dataset", "digits", "--cron", "0 3 * * *"]) == 2
    assert "prefect server start" in capsys.readouterr().err


@pytest.mark.slow
def test_zoorank_serve_runs_the_deployment_on_a_real_server(tmp_path):
    """``prefect server start`` + ``zoorank serve --run-now``: the served deployment is
    registered with its cron schedule and one run of it completes (about 1-3 minutes)."""
    from tests.integration.real_server import real_prefect_server

    zoo = tmp_path / "zoo.yaml"
    _write_zoo(zoo, ["cnn_mnist"])
    with real_prefect_server(tmp_path) as server:
        server.spawn("zoorank", "serve", "--zoo", str(zoo), "--dataset", "digits", "--per-class", "3",
                     "--metrics", "knn", "--cron", "0 4 * * *", "--name", "nightly", "--run-now")
        deps = server.wait_for_completed_run("nightly")
        assert [s["schedule"]["cron"] for s in deps[0]["schedules"]] == ["0 4 * * *"]
        assert deps[0]["parameters"]["datasets"] == ["digits"]


@pytest.mark.slow
def test_prefect_yaml_deploys_and_a_process_worker_runs_it(tmp_path):
    """The documented work-pool path (deployments/README.md): ``prefect deploy`` of
    deployments/prefect.yaml against a real server, then ``prefect worker start`` runs a flow
    run of it to completion (parameters overridden to a tiny zoo and an isolated home)."""
    from pathlib import Path

    from tests.integration.real_server import real_prefect_server

    root = Path(__file__).resolve().parents[2]
    zoo = tmp_path / "zoo.yaml"
    _write_zoo(zoo, ["cnn_mnist", "cnn_usps"])
    home = tmp_path / "zr-deployed"
    with real_prefect_server(tmp_path) as server:
        server.env["ZOORANK_REPO"] = str(root)
        server.run("prefect", "work-pool", "create", "zoorank-pool", "--type", "process")
        server.run("prefect", "--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all",
                   cwd=root)
        deps = server.post("/deployments/filter", {"deployments": {"name": {"any_": ["rerank-zoo"]}}})
        assert [s["schedule"]["cron"] for s in deps[0]["schedules"]] == ["0 3 * * *"]
        server.run("prefect", "deployment", "run", "rerank/rerank-zoo", "--param", f"zoo={zoo}",
                   "--param", "per_class=3", "--param", 'metrics=["knn"]', "--param", f"home={home}")
        server.spawn("prefect", "worker", "start", "--pool", "zoorank-pool", "--run-once")
        server.wait_for_completed_run("rerank-zoo", timeout=300)
    assert (home / "mlflow.db").is_file() and any((home / "store.zarr" / "scores").iterdir())
