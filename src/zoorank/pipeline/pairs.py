"""Former grab bag of the pipeline, split by job (issue 12); these names stay importable here
for existing callers. New code imports them from their modules:

- :mod:`zoorank.pipeline.sources`: ``load_subset``, ``load_backbone``, ``spec_id``, ``model_identity``;
- :mod:`zoorank.pipeline.outcomes`: ``PairOutcome``, ``collect_pair``, ``ranking_table``,
  ``default_metrics`` (the ranking's logical key: ``zoorank.storage.tracking.values.ranking_key``);
- :mod:`zoorank.pipeline.pair_run`: ``run_pair_direct``.
"""
from __future__ import annotations

from zoorank.pipeline.outcomes import PairOutcome, collect_pair, default_metrics, ranking_table
from zoorank.pipeline.pair_run import run_pair_direct
from zoorank.pipeline.sources import load_backbone, load_subset, model_identity, spec_id

__all__ = ["PairOutcome", "collect_pair", "default_metrics", "ranking_table", "run_pair_direct",
           "load_backbone", "load_subset", "model_identity", "spec_id"]
