"""Typed requests: what a ranking, a benchmark or a re-ranking is asked to do, as one object each
instead of a dozen positional parameters. The flows take them (Prefect validates a dataclass
parameter with pydantic and shows its fields in the UI); the API and the CLI build them.
docs/pipeline.md, "Typed requests"."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zoorank.pipeline.stages import SubsetSpec

__all__ = ["RankRequest", "RunOptions", "BenchmarkRequest"]


@dataclass(frozen=True)
class RankRequest:
    """Rank ``models`` (zoo spec ids or ModelSpecs) on ``datasets``.

    ``metric_params``: ``{metric: {parameter: value}}`` (a parameter a metric's upstream stage maps
    goes to that stage, ``zoorank.metrics.registry.Upstream.from_metric``); ``stage_params``:
    ``{stage name: {parameter: value}}`` for the upstream stages directly. ``zoo``: the zoo's
    label (a file path or ``"default"``) for the MLflow run. Empty ``metrics``: every metric.
    """

    models: list[Any]
    datasets: list[str]
    subset: SubsetSpec = field(default_factory=SubsetSpec)
    metrics: list[str] = field(default_factory=list)
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    zoo: str | None = None

    def metric_names(self) -> list[str]:
        from zoorank.pipeline.outcomes import default_metrics

        return list(self.metrics or default_metrics())


@dataclass(frozen=True)
class RunOptions:
    """How a flow runs its stages and whether it tracks: torch ``device``, extraction
    ``batch_size``, ``data_root`` (torchvision datasets), MLflow tracking, a new run even when a
    finished one of the same ranking exists (``new_run``)."""

    device: str = "cpu"
    batch_size: int = 64
    data_root: str | None = None
    track: bool = True
    new_run: bool = False


@dataclass(frozen=True)
class BenchmarkRequest:
    """Every metric's ranking against fine-tuned ground truth (``zoorank.orchestration.flows.benchmark``).

    Either ``models`` (a real zoo: the rank flow's scores) or ``features`` =
    ``{dataset: {model: (features, labels[, source_probs])}}`` (a synthetic zoo). ``ground_truth``:
    a DataFrame, a CSV path, an MLflow ground-truth run id or ``"mlflow"`` (the newest).
    ``low_data``: N/K of the low-data regime (``None``: 2, 5, 10), ``repeats`` subsets each;
    ``low_metrics``: the metrics re-scored there (``None``: all); ``ablations``: LEAD's one-option
    variants.
    """

    datasets: list[str]
    ground_truth: Any = "mlflow"
    models: list[Any] | None = None
    features: Any = None
    subset: SubsetSpec = field(default_factory=lambda: SubsetSpec(per_class=20))
    metrics: list[str] = field(default_factory=list)
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    low_data: list[int] | None = None
    repeats: int = 5
    ablations: bool = True
    gt_metric: str = "test_top1"
    low_metrics: list[str] | None = None

    def rank_request(self) -> RankRequest:
        return RankRequest(list(self.models or []), list(self.datasets), self.subset, list(self.metrics),
                           dict(self.metric_params), dict(self.stage_params))
