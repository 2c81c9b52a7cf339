"""Ranking tables as run artifacts: ``rankings/<name>.csv`` (+ an optional chart) and read back."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd
from zoorank.storage.tracking.client import MlflowException  # via client: it sets the telemetry variable first

from zoorank.storage.tracking.errors import RankingNotFound, TrackingError
from zoorank.storage.tracking.tags import TABLE_DIR
from zoorank.storage.tracking.values import _TABLE_NAME_RE


class RankingTablesMixin:
    """``log_ranking_table`` / ``list_rankings`` / ``find_ranking`` of :class:`Tracker`."""

    def log_ranking_table(
        self,
        parent_run_id: str,
        df: pd.DataFrame,
        *,
        name: str = "ranking",
        chart: Callable[[pd.DataFrame, Path], Path | None] | None = None,
    ) -> list[str]:
        """Log ``df`` as ``rankings/<name>.csv`` and, when ``chart`` is given, the picture it draws
        (``chart(table, <tmp>/<name>.png)`` returns the file written, or None for no picture:
        :func:`zoorank.reporting.charts.ranking_chart` makes the bar plot). Returns the artifact
        paths logged. Storage draws nothing itself (reporting draws, storage keeps)."""
        if not _TABLE_NAME_RE.match(name):
            raise ValueError(f"table name {name!r} must match {_TABLE_NAME_RE.pattern}")
        table = df if isinstance(df.index, pd.RangeIndex) else df.reset_index()
        logged = []
        with tempfile.TemporaryDirectory(prefix="zoorank-table-") as tmp:
            csv = Path(tmp) / f"{name}.csv"
            table.to_csv(csv, index=False)
            files = [csv]
            png = chart(table, Path(tmp) / f"{name}.png") if chart is not None else None
            if png is not None:
                files.append(Path(png))
            for f in files:
                try:
                    self.client.log_artifact(parent_run_id, str(f), artifact_path=TABLE_DIR)
                except Exception as e:
                    raise TrackingError(
                        f"cannot log {f.name} to run {parent_run_id} at {self._uri_text}: {e}"
                    ) from e
                logged.append(f"{TABLE_DIR}/{f.name}")
        return logged

    def list_rankings(self, run_id: str) -> list[str]:
        """Names of the ranking tables logged on a run."""
        try:
            files = self.client.list_artifacts(run_id, TABLE_DIR)
        except MlflowException as e:
            raise TrackingError(f"no MLflow run {run_id} at {self._uri_text} ({e})") from e
        return sorted(Path(f.path).stem for f in files if f.path.endswith(".csv"))

    def find_ranking(self, run_id: str, name: str | None = None) -> pd.DataFrame:
        """Read a logged ranking table back. Several tables and no ``name``: concatenated with a
        leading ``table`` column."""
        names = self.list_rankings(run_id)
        if name is not None:
            if name not in names:
                raise RankingNotFound(
                    f"run {run_id} at {self._uri_text} has no ranking table {name!r} (has: {names})"
                )
            names = [name]
        if not names:
            raise RankingNotFound(f"run {run_id} at {self._uri_text} has no ranking table")
        frames = []
        with tempfile.TemporaryDirectory(prefix="zoorank-table-") as tmp:
            for n in names:
                local = self.client.download_artifacts(run_id, f"{TABLE_DIR}/{n}.csv", dst_path=tmp)
                frames.append(pd.read_csv(local))
        if len(frames) == 1:
            return frames[0]
        out = pd.concat([f.assign(table=n) for n, f in zip(names, frames, strict=True)], ignore_index=True)
        return out[["table", *[c for c in out.columns if c != "table"]]]
