"""The rank flow on Prefect's Dask task runner (LocalCluster, 2 single-threaded worker
processes) gives the same table as on the thread runner."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zoorank.api import rank

pytestmark = pytest.mark.integration

ZOO = ["cnn_mnist", "cnn_usps", "cnn_digitrec"]
METRICS = ["lead", "logme", "hscore", "knn", "leep"]


def test_dask_runner_matches_thread_runner(prefect_server, settings, tmp_path):
    from zoorank.config import Settings

    thread = rank(ZOO, "digits", per_class=5, metrics=METRICS, settings=settings, track=False)
    # a separate store, so that the Dask workers compute every stage themselves
    other = Settings.from_env(env={}, home=tmp_path / "dask")
    dask = rank(ZOO, "digits", per_class=5, metrics=METRICS, settings=other, track=False,
                runner="dask", workers=2, memory_limit="2GiB")
    assert (dask["cached_stages"] == 0).all()
    cols = ["dataset", "rank", "model"]
    pd.testing.assert_frame_equal(dask[cols], thread[cols])
    np.testing.assert_allclose(dask[METRICS].to_numpy(), thread[METRICS].to_numpy(), rtol=1e-6, atol=1e-9)
