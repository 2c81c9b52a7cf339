"""The HTML report in a real headless browser (Debian's ``chromium``): it loads without console
errors, has one table row per model, and its screenshot is not blank (pixels checked with PIL).
``zoorank report RUN_ID`` writes it from a real logged ranking and logs it to the MLflow run.

``make test`` (hence CI) installs Debian's chromium through ``scripts/setup.sh``
(``ZOORANK_SETUP_TESTS=1``; ``make demo`` does not, it is about 290 MB). Where it cannot be
installed these tests skip, saying so."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zoorank.reporting.html import agreement, html_report, write_html_report
from zoorank.reporting.ties import top_tie_set

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine: "
                                   "`apt-get install -y chromium` runs the headless-browser checks")


def _table(n=6, datasets=("emoji",)):
    rng = np.random.default_rng(1)
    rows = []
    for d in datasets:
        for i in range(n):
            rows.append({"dataset": d, "rank": i + 1, "model": f"model_{i}", "lead": -0.1 * (i + 1),
                         "logme": rng.normal(), "leep": rng.normal(), "lgc": rng.normal(), "lfc": rng.normal(),
                         "knn": rng.normal(), "seconds": 1.0, "cached_stages": 3, "failed": ""})
    return pd.DataFrame(rows)


def _browser(args: list[str], page: Path, tmp_path: Path):
    """Run headless chromium on ``page``; returns (stdout, stderr)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           *args, page.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout, res.stderr


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_page_is_self_contained_and_has_one_row_per_model():
    t = _table(5, datasets=("emoji", "digits"))
    ties = {"emoji": top_tie_set({m: np.full(4, -i, float) for i, m in enumerate(t["model"][:5])}, n_boot=10)}
    truth = pd.DataFrame({"dataset": "emoji", "model": [f"model_{i}" for i in range(5)],
                          "accuracy": np.linspace(0.9, 0.5, 5)})
    page = html_report(t, ties=ties, truth=truth, truth_note="test truth", run_id="abc")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)   # nothing fetched from outside
    assert "<script" not in page
    for d in ("emoji", "digits"):
        body = page.split(f'id="ranking-{d}"')[1].split("</table>")[0]
        assert body.count("<tr") == 5 + 1                 # header + one row per model
    assert page.count("data:image/png;base64,") == 3      # two heatmaps + one score-vs-truth plot


def test_agreement_is_spearman_across_models():
    t = _table(6)
    t["same_order"] = t["lead"] * 3 + 1       # monotone transform of LEAD: rho = 1
    t["reversed"] = -t["lead"]
    corr = agreement(t, ["lead", "same_order", "reversed", "logme"])
    assert corr.loc["lead", "same_order"] == pytest.approx(1.0)
    assert corr.loc["lead", "reversed"] == pytest.approx(-1.0)
    assert corr.loc["logme", "logme"] == pytest.approx(1.0)


@needs_browser
def test_console_error_detection_works(tmp_path):
    """Negative control: a page that throws is caught by the same check."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><html><body><p>x</p><script>throw new Error('boom')</script></body></html>")
    _, err = _browser(["--dump-dom"], bad, tmp_path)
    assert any("boom" in line for line in _console_errors(err))


@needs_browser
def test_report_in_headless_chromium(tmp_path):
    from PIL import Image

    t = _table(7)
    page = write_html_report(tmp_path / "report.html", t, ties={}, truth=None)
    dom, err = _browser(["--dump-dom"], page, tmp_path)
    assert _console_errors(err) == []
    table = dom.split('id="ranking-emoji"')[1].split("</table>")[0]
    assert table.count("<tr") == 7 + 1
    shot = tmp_path / "shot.png"
    _browser([f"--screenshot={shot}", "--window-size=1200,900"], page, tmp_path)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (900, 1200)
    non_white = (img.sum(axis=2) < 3 * 245).mean()
    assert non_white > 0.02, f"screenshot is (nearly) blank: {non_white:.3%} non-white pixels"
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50   # text, table shading and the heatmap


def test_cli_report_writes_and_logs_the_page(prefect_server, settings, tmp_path, capsys):
    import mlflow

    from zoorank.api import rank
    from zoorank.cli import main as cli_main

    res = rank(["cnn_mnist", "cnn_usps"], "digits", per_class=5, metrics=["lead", "logme", "lgc"],
               settings=settings, details=True)
    out = tmp_path / "r.html"
    assert cli_main(["report", res.run_id, "--out", str(out), "--home", str(settings.home)]) == 0
    page = out.read_text()
    assert page.count("<tr") >= 2 + 1 and "cnn_usps" in page
    client = mlflow.MlflowClient(settings.tracking_uri)
    assert "report/r.html" in [f.path for f in client.list_artifacts(res.run_id, "report")]
    # the shipped ground truth covers digits: the score-vs-accuracy plot is there
    assert "score against ground truth" in page
    if CHROMIUM:
        dom, err = _browser(["--dump-dom"], out, tmp_path)
        assert _console_errors(err) == [] and dom.count("cnn_mnist") >= 1
