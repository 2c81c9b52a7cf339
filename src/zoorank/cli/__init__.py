"""``zoorank`` command line: rank, list, show, report, cache.

    zoorank rank --zoo default --dataset emoji --per-class 10
    zoorank rank ... --format table|csv|json|markdown --all-metrics --report -v
    zoorank list models|datasets|metrics
    zoorank show <run-id>
    zoorank report <run-id>                  (one self-contained HTML page, logged to the run)
    zoorank cache info|prune
    zoorank serve --zoo my_zoo.yaml --dataset digits --cron "0 3 * * *"   (needs PREFECT_API_URL)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from zoorank.config import Settings, apply_offline_defaults


def _location_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("locations (default: ./.zoorank; env ZOORANK_HOME, ZOORANK_STORE, ...)")
    g.add_argument("--home", help="project folder holding the defaults below")
    g.add_argument("--store", help="Zarr store of cached arrays")
    g.add_argument("--read-store", help="a read-only store (team cache) read before computing; new stages "
                                        "go to --store (env ZOORANK_READ_STORE)")
    g.add_argument("--tracking-uri", help="MLflow tracking URI (sqlite:///... or http://host:port)")
    g.add_argument("--artifact-root", help="MLflow artifact folder for new experiments")
    g.add_argument("--prefect-home", help="PREFECT_HOME of the temporary Prefect server")


def _settings(args) -> Settings:
    return Settings.from_env(home=args.home, store=args.store, tracking_uri=args.tracking_uri,
                             artifact_root=args.artifact_root, prefect_home=args.prefect_home,
                             read_store=args.read_store)


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _metric_params(items: list[str] | None) -> dict[str, dict]:
    """``--param METRIC.KEY=VALUE`` (repeatable) -> ``{metric: {key: value}}``; VALUE is read as
    YAML (``0.0001``, ``head``, ``[1024, 2048]``; ``1e-4`` as a float)."""
    import yaml

    out: dict[str, dict] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        metric, dot, key = name.partition(".")
        if not (sep and dot and metric and key):
            raise ValueError(f"--param {item!r}: expected METRIC.KEY=VALUE, e.g. --param lead.ntk=head")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):      # YAML 1.1 reads 1e-4 as a string
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out.setdefault(metric, {})[key] = parsed
    return out


def _per_class(text: str):
    """``--per-class``: a positive integer (at most that many images per class) or ``all``/``0``."""
    from zoorank.api import normalise_per_class

    try:
        return normalise_per_class(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("per_class", "--per-class")) from None


def _output_flags(p: argparse.ArgumentParser) -> None:
    from zoorank.reporting import FORMATS

    p.add_argument("--format", choices=FORMATS, default="table", help="how the ranking is printed (default: table)")
    p.add_argument("--all-metrics", action="store_true",
                   help="every metric's raw score, not just the recommended order, LEAD and three baselines' ranks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoorank", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("rank", help="rank a zoo of backbones on one or more datasets")
    r.add_argument("--zoo", default="default", help="'default', a zoo YAML file, or model ids (comma-separated)")
    r.add_argument("--dataset", action="append", required=True,
                   help="dataset id (repeat for several): e.g. digits, fashion_mnist, imagefolder:/path")
    r.add_argument("--per-class", type=_per_class, default=100,
                   help="at most this many images per class ('all' or 0: every image; default 100)")
    r.add_argument("--split", default="train", help="which stratified split to score (train/val/test/all)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--metrics", help="comma-separated metric names (default: all)")
    r.add_argument("--param", action="append", metavar="METRIC.KEY=VALUE",
                   help="a metric's parameter (repeat for several), e.g. lead.ntk=head (docs/lead.md)")
    r.add_argument("--device", default="cpu", help="cpu or cuda")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--workers", type=int, default=2, help="parallel tasks (threads or Dask workers)")
    r.add_argument("--runner", choices=["thread", "dask"], default="thread")
    r.add_argument("--address", help="existing Dask scheduler address (with --runner dask)")
    r.add_argument("--memory-limit", help="memory limit per Dask worker, e.g. 4GiB (LocalCluster only)")
    r.add_argument("--data-root", help="root folder for torchvision datasets")
    r.add_argument("--new-run", action="store_true", help="always log a new MLflow parent run")
    r.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    r.add_argument("--csv", help="also write the full ranking table (every metric) to this CSV file")
    r.add_argument("--report", nargs="?", const="", metavar="HTML",
                   help="also write the HTML report (default file: zoorank-report-<run>.html) and log it to MLflow")
    r.add_argument("-v", "--verbose", action="store_true", help="one progress line per finished stage")
    _output_flags(r)
    _location_flags(r)

    ls = sub.add_parser("list", help="list known models, datasets or metrics")
    ls.add_argument("what", choices=["models", "datasets", "metrics"])

    sh = sub.add_parser("show", help="print a logged ranking again (from MLflow)")
    sh.add_argument("run_id")
    _output_flags(sh)
    _location_flags(sh)

    rp = sub.add_parser("report", help="write one self-contained HTML page for a logged ranking and log it "
                                       "to its MLflow run")
    rp.add_argument("run_id")
    rp.add_argument("--out", help="HTML file (default: zoorank-report-<run>.html)")
    rp.add_argument("--ground-truth", default="auto",
                    help="fine-tuned accuracies to plot scores against: a CSV (dataset,model,accuracy|test_top1), "
                         "an MLflow ground-truth run id, 'mlflow' (newest), 'none', or 'auto' (default: the "
                         "shipped results/ground_truth.csv when it covers the datasets)")
    _location_flags(rp)

    c = sub.add_parser("cache", help="inspect or prune the array cache")
    c.add_argument("action", choices=["info", "prune"])
    c.add_argument("--older-than-days", type=float, help="prune: entries not used for this many days")
    c.add_argument("--all", action="store_true", help="prune: every entry (the cache starts empty)")
    _location_flags(c)

    sv = sub.add_parser("serve", help="re-rank a zoo file on a cron schedule (needs a real Prefect "
                                      "server: `prefect server start` + PREFECT_API_URL)")
    sv.add_argument("--zoo", required=True, help="zoo YAML file (re-read at every run)")
    sv.add_argument("--dataset", action="append", required=True, help="dataset id (repeat for several)")
    sv.add_argument("--cron", default="0 3 * * *", help="cron schedule (default: daily at 03:00)")
    sv.add_argument("--timezone", help="IANA time zone of the cron schedule (default UTC)")
    sv.add_argument("--name", default="rerank-zoo", help="deployment name")
    sv.add_argument("--per-class", type=_per_class, default=100, help="at most this many per class ('all': every image)")
    sv.add_argument("--metrics", help="comma-separated metric names (default: all)")
    sv.add_argument("--device", default="cpu")
    sv.add_argument("--runner", choices=["thread", "dask"], default="thread")
    sv.add_argument("--workers", type=int, default=2)
    sv.add_argument("--address", help="existing Dask scheduler address (with --runner dask)")
    sv.add_argument("--run-now", action="store_true", help="also trigger one run right away")
    _location_flags(sv)
    _add_ground_truth_benchmark(sub)
    return parser


def _width() -> int:
    import shutil

    return shutil.get_terminal_size(fallback=(80, 24)).columns


def _print_ranking(table, ties: dict, notes: dict, args) -> None:
    from zoorank.reporting.render import render
    from zoorank.reporting.summary import best_baselines

    text = render(table, args.format, baselines=best_baselines(), ties=ties, notes=notes,
                  all_metrics=args.all_metrics, width=_width())
    sys.stdout.write(text)
    if args.format == "table":
        failed = table[table["failed"].fillna("").astype(str) != ""] if "failed" in table else table.iloc[0:0]
        for _, row in failed.iterrows():
            print(f"   {row['model']} @ {row['dataset']}: failed metrics -> {row['failed']}")


def cmd_rank(args) -> int:
    from zoorank.support import interrupt
    from zoorank.storage.layered import resolve_read_only_store

    settings = _settings(args)
    apply_offline_defaults(settings)
    settings = resolve_read_only_store(settings)  # a read-only --store is read through, not a failure
    previous = interrupt.install(store=settings.store)
    try:
        return _rank_and_print(args, settings)
    finally:
        interrupt.restore(previous)
        from zoorank.reporting import progress

        progress.disable()


def _rank_and_print(args, settings) -> int:
    from zoorank.reporting import progress
    from zoorank.api import rank
    from zoorank.storage.layered import describe as describe_store

    progress.enable("verbose" if args.verbose else "auto")
    metrics = _csv(args.metrics)
    start = time.perf_counter()
    print(f"zoorank: ranking zoo {args.zoo!r} on {', '.join(args.dataset)} "
          f"({'all images' if args.per_class is None else f'at most {args.per_class}'} per class); "
          f"cache {describe_store(settings)}", file=sys.stderr)
    res = rank(args.zoo, args.dataset, per_class=args.per_class, split=args.split,
               seed=args.seed, metrics=metrics, settings=settings, device=args.device,
               batch_size=args.batch_size, workers=args.workers, runner=args.runner,
               dask_address=args.address, data_root=args.data_root, track=not args.no_track,
               new_run=args.new_run, details=True, memory_limit=args.memory_limit,
               metric_params=_metric_params(args.param))
    _print_ranking(res.table, res.ties, res.notes, args)
    if args.csv:
        res.table.to_csv(args.csv, index=False)
    report = None
    if args.report is not None:
        report = _write_report(settings, res.run_id, res.table, res.ties, res.notes, args.report or None, "auto")
    took = time.perf_counter() - start
    how = "every stage from the cache" if res.from_cache else "Prefect flow"
    lines = [f"done in {took:.1f} s ({how}); cached arrays: {settings.store}"]
    if report:
        lines.append(f"report: {report}")
    if res.run_id:
        lines.append(f"MLflow run {res.run_id}")
        lines.append(f"  table again: zoorank show {res.run_id}")
        lines.append(f"  HTML report: zoorank report {res.run_id}")
        lines.append(f"  browse: mlflow ui --backend-store-uri {settings.tracking_uri}")
    print("\n".join(lines), file=sys.stderr if args.format != "table" else sys.stdout)
    return 0


def cmd_list(args) -> int:
    if args.what == "models":
        from zoorank.zoo import get_config, list_models
        for m in list_models():
            cfg = get_config(m)
            print(f"{m:24s} {cfg.feature_dim:5d}-d  input {cfg.input_size[0]}x{cfg.input_size[1]}  "
                  f"source task: {cfg.source_task or '-'}")
    elif args.what == "datasets":
        from zoorank.data import dataset_info, list_datasets
        for d in list_datasets():
            print(f"{d:16s} {dataset_info(d)}")
    else:
        from zoorank.metrics.registry import METRICS
        for m in METRICS.values():
            needs = ", ".join(n for n in m.needs if n not in ("features", "labels")) or "-"
            print(f"{m.name:12s} needs: {needs:14s} {m.paper}")
    return 0


def cmd_show(args) -> int:
    from zoorank.reporting.tracking_report import load_ranking, load_ties

    settings = _settings(args)
    apply_offline_defaults(settings)
    table, _ = load_ranking(settings, args.run_id)
    _print_ranking(table, load_ties(settings, args.run_id), {}, args)
    return 0


def _write_report(settings, run_id, table, ties, notes, out, ground_truth) -> str:
    """Write the HTML report of a ranking; log it to ``run_id`` (when there is one)."""
    from zoorank.reporting.html import write_html_report
    from zoorank.reporting.tracking_report import log_report, report_truth

    truth, truth_note = report_truth(settings, ground_truth, sorted(set(table["dataset"])))
    path = Path(out or f"zoorank-report-{(run_id or 'ranking')[:12]}.html")
    write_html_report(path, table, ties=ties, notes=notes, truth=truth, truth_note=truth_note, run_id=run_id,
                      tracking_uri=settings.tracking_uri if run_id else None)
    if run_id:
        log_report(settings, run_id, path)
    return str(path)


def cmd_report(args) -> int:
    from zoorank.reporting.tracking_report import load_ranking, load_ties

    settings = _settings(args)
    apply_offline_defaults(settings)
    table, _ = load_ranking(settings, args.run_id)
    path = _write_report(settings, args.run_id, table, load_ties(settings, args.run_id), {}, args.out,
                         args.ground_truth)
    print(f"report: {path} (logged to MLflow run {args.run_id} as report/{Path(path).name})")
    return 0


def cmd_cache(args) -> int:
    from zoorank.storage.arrays import ArrayStore

    settings = _settings(args)
    store = ArrayStore(settings.store)
    if args.action == "info":
        info = store.info()
        for k, v in (info.items() if isinstance(info, dict) else vars(info).items()):
            print(f"{k}: {v}")
        return 0
    if args.all:
        report = store.prune(keep=set())
    else:
        days = args.older_than_days
        report = store.prune(older_than=None if days is None else days * 86400.0)
    print(report.as_dict() if hasattr(report, "as_dict") else report)
    return 0


def cmd_serve(args) -> int:
    from zoorank.orchestration.serve import require_api_url, serve

    url = require_api_url()
    settings = _settings(args)
    print(f"zoorank: serving deployment rerank/{args.name} ({args.cron}) on {url}; Ctrl-C to stop",
          file=sys.stderr)
    serve(args.zoo, args.dataset, cron=args.cron, name=args.name, timezone=args.timezone, settings=settings,
          run_now=args.run_now, per_class=args.per_class, metrics=_csv(args.metrics),
          device=args.device, runner=args.runner, workers=args.workers, dask_address=args.address)
    return 0


def _quiet_libraries() -> None:
    """No download bars or schema-migration INFO lines from MLflow among zoorank's output."""
    import logging
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration", "mlflow.tracking.fluent"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    handler = {"rank": cmd_rank, "list": cmd_list, "show": cmd_show, "report": cmd_report, "cache": cmd_cache,
               "serve": cmd_serve,
               "ground-truth": cmd_ground_truth, "benchmark": cmd_benchmark, "select": cmd_select}[args.command]
    try:
        return handler(args)
    except (ValueError, FileNotFoundError, PermissionError, ImportError, LookupError) as exc:
        print(f"zoorank: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - storage/tracking errors carry their own message
        from zoorank.storage.arrays import StoreError
        if isinstance(exc, StoreError) or type(exc).__name__ in {"TrackingError", "TrackingUnavailable"}:
            print(f"zoorank: error: {exc}", file=sys.stderr)
            return 2
        raise


# ---------------------------------------------------------------- ground truth and benchmark
def _add_ground_truth_benchmark(sub) -> None:
    from zoorank.cli.ground_truth import add_ground_truth_parser

    add_ground_truth_parser(sub, _location_flags)
    from zoorank.cli.select import add_select_parser

    add_select_parser(sub, _location_flags, _per_class)

    b = sub.add_parser("benchmark", help="every metric's ranking vs the ground truth: tau tables, low data, "
                                         "LEAD ablations, Markdown/HTML report")
    b.add_argument("--zoo", default="default")
    b.add_argument("--dataset", action="append", required=True)
    b.add_argument("--ground-truth", default="mlflow",
                   help="CSV (dataset,model,test_top1|accuracy), an MLflow ground-truth run id, or 'mlflow' (newest)")
    b.add_argument("--per-class", type=int, default=20)
    b.add_argument("--metrics", help="comma-separated metric names (default: all)")
    b.add_argument("--low-data", default="2,5,10", help="N/K values ('' to skip)")
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--no-ablations", action="store_true")
    b.add_argument("--out", default="results/benchmark", help="report folder")
    b.add_argument("--device", default="cpu")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--threads", type=int)
    b.add_argument("--no-track", action="store_true")
    _location_flags(b)


def cmd_select(args) -> int:
    from zoorank.cli.select import cmd_select as run

    return run(args, _settings(args))


def cmd_ground_truth(args) -> int:
    from zoorank.cli.ground_truth import cmd_ground_truth as run

    return run(args, _settings(args))


def cmd_benchmark(args) -> int:
    from zoorank.orchestration.flows.benchmark import run_benchmark, summary_tables

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    low = [int(v) for v in args.low_data.split(",") if v.strip()]
    res = run_benchmark(args.zoo, args.dataset, args.ground_truth, per_class=args.per_class or None,
                        metrics=_csv(args.metrics), low_data=low, repeats=args.repeats,
                        ablations=not args.no_ablations, settings=_settings(args), device=args.device,
                        track=not args.no_track, workers=args.workers, out_dir=args.out)
    print(summary_tables(res)["full"].to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"report: {res['report']['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
