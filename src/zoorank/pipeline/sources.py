"""Where a pair's inputs come from: the scored images of a dataset (memoised per process), the
backbone of a zoo spec, and its identity for cache keys. Shared by the Prefect tasks, the direct
(Prefect-free) runner, the cached path and the CLI."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from zoorank.pipeline.stages import SubsetSpec, select_subset
from zoorank.storage.arrays import ArrayStore

__all__ = ["load_subset", "load_backbone", "spec_id", "model_identity", "PairSource"]


@functools.lru_cache(maxsize=8)
def _load_dataset(dataset_id: str, data_root: str | None):
    from zoorank.data import load_dataset

    # --data-root locates torchvision datasets; the offline ids know where their files are
    root = data_root if dataset_id.startswith(("torchvision:", "imagefolder")) else None
    return load_dataset(dataset_id, root=root)


def load_subset(dataset_id: str, subset: SubsetSpec, data_root: str | None = None):
    """The scored images of ``dataset_id`` (datasets are memoised per process)."""
    return select_subset(_load_dataset(dataset_id, data_root), subset)


def load_backbone(spec, device: str = "cpu"):
    from zoorank.zoo import load_model

    return load_model(spec, device=device)


def spec_id(spec) -> str:
    return spec if isinstance(spec, str) else spec.id


def model_identity(spec, store: ArrayStore | None = None) -> dict:
    """``{"model", "identity", "has_outputs", "feature_dim"}``: id + weights digest + config digest.

    Memoised in ``store`` by weight-file stat (``zoorank.pipeline.identity``): a cached rerun does not
    load the backbone at all; on a cache miss the features stage loads it.
    """
    from zoorank.pipeline.identity import model_identity as memoised_identity

    return memoised_identity(spec, store, load_backbone=load_backbone)


@dataclass(frozen=True)
class PairSource:
    """How to load one pair's backbone and scored images, in any process (picklable, JSON-friendly
    parts): the :class:`zoorank.pipeline.upstream.PairSources` of a task or of the direct runner."""

    spec: Any
    dataset: str
    subset: SubsetSpec
    data_root: str | None = None

    def load_backbone(self, device: str = "cpu"):
        return load_backbone(self.spec, device)

    def images(self):
        return load_subset(self.dataset, self.subset, self.data_root)
