"""The rank flow end to end: real Prefect (temporary server), real Zarr store, SQLite MLflow."""
from __future__ import annotations

import mlflow
import numpy as np
import pytest

from zoorank.api import rank
from zoorank.cli import main as cli_main

pytestmark = pytest.mark.integration

ZOO = ["cnn_mnist", "cnn_usps", "cnn_digitrec"]
METRICS = ["lead", "logme", "hscore", "knn", "leep"]


def _children(settings, run_id):
    client = mlflow.MlflowClient(settings.tracking_uri)
    runs = client.search_runs([client.get_run(run_id).info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    return runs


def test_rank_flow_logs_caches_and_recomputes_only_what_changed(prefect_server, settings, capsys):
    table, run_id = rank(ZOO, "digits", per_class=6, metrics=METRICS, settings=settings,
                         return_run_id=True)
    assert sorted(table["model"]) == sorted(ZOO)
    assert table["rank"].tolist() == [1, 2, 3]
    assert np.isfinite(table[["lead", "logme", "hscore", "knn", "leep"]].to_numpy()).all()
    assert (table["cached_stages"] == 0).all()

    # MLflow: a parent run with one nested run per pair, findable by tags
    children = _children(settings, run_id)
    assert len(children) == 3
    mlflow.set_tracking_uri(settings.tracking_uri)
    found = mlflow.search_runs(experiment_names=[settings.experiment],
                               filter_string="tags.`zoorank.model` = 'cnn_usps' and tags.`zoorank.dataset` = 'digits'")
    assert len(found) == 1
    lead_logged = found["metrics.score.lead"].iloc[0]
    assert lead_logged == pytest.approx(table.set_index("model").loc["cnn_usps", "lead"])

    # the table again, read back from MLflow by `zoorank show`
    assert cli_main(["show", run_id, "--home", str(settings.home)]) == 0
    shown = capsys.readouterr().out
    assert all(m in shown for m in ZOO) and "LEAD" in shown

    # second identical run: everything from cache (features, svm, ntk + one record per metric)
    again = rank(ZOO, "digits", per_class=6, metrics=METRICS, settings=settings)
    assert (again["cached_stages"] == 3 + len(METRICS)).all()
    np.testing.assert_allclose(again[METRICS].to_numpy(), table[METRICS].to_numpy())

    # change one LEAD evolution parameter: only the LEAD score recomputes
    changed = rank(ZOO, "digits", per_class=6, metrics=METRICS, settings=settings,
                   metric_params={"lead": {"eta_t": 0.5}})
    assert (changed["cached_stages"] == 3 + len(METRICS) - 1).all()
    by_model, first = changed.set_index("model").sort_index(), table.set_index("model").sort_index()
    assert not np.allclose(by_model["lead"], first["lead"])
    np.testing.assert_allclose(by_model["logme"], first["logme"])   # rows matched by model: the order may change

    # change an NTK parameter: eigenvalues and the LEAD score recompute, features stay cached
    ntk = rank(ZOO, "digits", per_class=6, metrics=["lead"], settings=settings,
               stage_params={"network_ntk_eigenvalues": {"samples_per_class": 4}})
    assert (ntk["cached_stages"] == 2).all()   # features + svm


def test_unknown_ids_are_named(prefect_server, settings):
    with pytest.raises(ValueError, match="cnn_mnst"):
        rank(["cnn_mnst"], "digits", per_class=2, settings=settings)
    with pytest.raises(ValueError, match="digitz"):
        rank(["cnn_mnist"], "digitz", per_class=2, settings=settings)


def test_per_class_is_an_upper_bound_and_the_output_says_so(prefect_server, settings):
    """per_class means "at most": a split smaller than asked uses all its images and says so."""
    res = rank(["cnn_mnist"], "digits", per_class=5000, metrics=["logme"], settings=settings, track=False,
               details=True)
    assert len(res.table) == 1 and np.isfinite(res.table["logme"]).all()
    assert "used whole" in res.notes["digits"][0] and "fewer than 5000" in res.notes["digits"][0]


@pytest.mark.parametrize("what, expected", [("models", "efficientnet_lite0"), ("datasets", "fashion_mnist"),
                                            ("metrics", "lead")])
def test_cli_list(what, expected, capsys):
    assert cli_main(["list", what]) == 0
    assert expected in capsys.readouterr().out


def test_cli_cache_info(settings, capsys):
    from zoorank.storage.arrays import ArrayStore
    ArrayStore(settings.store).put("features/" + "a" * 24, np.zeros((3, 2), np.float32))
    assert cli_main(["cache", "info", "--home", str(settings.home)]) == 0
    assert "1" in capsys.readouterr().out
