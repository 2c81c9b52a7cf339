"""Which column a ranking is ordered by (reporting.summary.recommended_column)."""
import numpy as np
import pandas as pd

from zoorank.reporting.summary import recommended_column


def _table(**metric_columns):
    return pd.DataFrame({"dataset": ["d", "d"], "rank": [1, 2], "model": ["a", "b"], **metric_columns,
                         "seconds": [0.1, 0.2], "cached_stages": [0, 0], "failed": ["", ""]})


def test_combined_first_then_lead_then_the_first_scored_metric():
    assert recommended_column(_table(lead=[1.0, 0.5], combined=[0.2, 0.1])) == "combined"
    assert recommended_column(_table(lead=[1.0, 0.5], combined=[np.nan, np.nan])) == "lead"
    assert recommended_column(_table(lead=[1.0, 0.5], knn=[0.3, 0.4])) == "lead"
    # a ranking of chosen metrics without LEAD (``--metrics knn,logme``) is ordered by its first one
    assert recommended_column(_table(knn=[0.3, 0.4], logme=[1.0, 2.0])) == "knn"
