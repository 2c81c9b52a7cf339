"""Tag names, run kinds and statuses zoorank writes to MLflow (no MLflow import)."""

from __future__ import annotations





TAG_KIND = "zoorank.kind"
TAG_MODEL = "zoorank.model"
TAG_DATASET = "zoorank.dataset"
TAG_LOGICAL_KEY = "zoorank.logical_key"
TAG_PAIR_KEY = "zoorank.pair_key"
TAG_PARENT = "mlflow.parentRunId"
TAG_OWNERS = "zoorank.owners"              # process identities that opened / joined a parent run
TAG_RECOVERED = "zoorank.recovered_from"   # dead owners of a stale run this run was adopted from
TAG_ENDED_BY = "zoorank.ended_by"          # who marked a stale run KILLED, and why
TABLE_DIR = "rankings"

_FINISHED = "FINISHED"
_UNFINISHED = ("RUNNING", "FAILED", "KILLED", "SCHEDULED")

# run kinds (values of TAG_KIND)
KIND_RANKING = "ranking"
KIND_PAIR = "pair"
KIND_GROUND_TRUTH = "ground_truth"   # the ground-truth flow's parent run
KIND_GT_PAIR = "gt_pair"             # one (model, dataset) of a ground truth
KIND_GT_TRIAL = "gt_trial"           # one fine-tuning trial of a gt_pair
TAG_TRIAL_KEY = "zoorank.trial_key"
