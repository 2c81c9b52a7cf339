"""What a ranking shows people: the compact answer (recommended order, tie set, a few baselines as
ranks), its text formats and the self-contained HTML report. Pure functions over tables and
arrays: no Prefect, no MLflow (``zoorank.reporting.tracking_report`` logs what these build)."""

#: the text formats of ``zoorank rank/show --format`` (here, so that the CLI parser imports no pandas)
FORMATS = ("table", "csv", "json", "markdown")
