"""Fault injection for the reliability tests: ``ZOORANK_KILL_AT=<point>`` makes the process
SIGKILL itself when it reaches that point (a real ``kill -9`` at a precise place).

``<point>:<n>`` kills at the n-th time the process reaches the point (default 1).

Points: ``features`` (labels and source outputs published, features not yet),
``svm_logits`` / ``ntk_eigenvalues`` / ``score`` (computed, not yet published),
``mlflow`` (parent run created, pairs half logged), ``gt_trial`` (a fine-tuning trial trained,
its record not yet written). Unset in normal use: a no-op.
"""
from __future__ import annotations

import os
import signal

ENV = "ZOORANK_KILL_AT"


_reached: dict[str, int] = {}


def kill_point(name: str) -> None:
    target = os.environ.get(ENV)
    if not target or target.split(":")[0] != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    nth = int(target.split(":")[1]) if ":" in target else 1
    if _reached[name] >= nth:
        os.kill(os.getpid(), signal.SIGKILL)
