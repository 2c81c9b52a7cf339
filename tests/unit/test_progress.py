"""Progress events -> one line per finished pair (lines and live modes), per-stage log with -v."""
from __future__ import annotations

import io

import pytest

from zoorank.reporting import progress
from zoorank.pipeline.stages import StageResult


def _events(pairs=("a / d", "b / d"), metrics=("lead", "logme")):
    for p in pairs:
        yield p, StageResult("features", "k", False, 1.0)
        yield p, StageResult("svm_logits", "k", True, 0.1)
        yield p, StageResult("ntk_eigenvalues", "k", True, 0.1)
        for m in metrics:
            info = {"score": -0.25} if m == "lead" else {"skipped": "no source head"}
            yield f"{p} [{m}]", StageResult("score", "k", m == "lead", 0.01, info)


@pytest.fixture(autouse=True)
def _off():
    yield
    progress.disable()


@pytest.mark.parametrize("mode", ["lines", "live", "verbose"])
def test_one_line_per_finished_pair(mode):
    out = io.StringIO()
    assert progress.enable(mode, stream=out) == mode
    progress.plan(2, {"features": 2, "svm_logits": 2, "ntk_eigenvalues": 2, "score": 4})
    for pair, res in _events():
        progress.stage_done(pair, res)
    progress.stop()
    text = out.getvalue()
    lines = [line for line in text.splitlines() if "] a / d" in line or "] b / d" in line]
    assert len(lines) == 2, text
    assert "[1/2] a / d  LEAD -0.25  (1 computed, 3 cached, 1 not applicable, 1.2 s)" in lines[0]
    stage_lines = [line for line in text.splitlines() if "computed" in line and "features" in line]
    assert bool(stage_lines) == (mode == "verbose")


def test_auto_is_lines_when_not_a_terminal_and_a_closed_stream_is_not_fatal():
    out = io.StringIO()
    assert progress.enable("auto", stream=out) == "lines"
    progress.plan(1, {"features": 1, "score": 1})
    out.close()
    progress.stage_done("a / d", StageResult("features", "k", False, 1.0))
    progress.stage_done("a / d [logme]", StageResult("score", "k", False, 1.0, {"score": 1.0}))
    with pytest.raises(ValueError, match="mode"):
        progress.enable("fancy")
