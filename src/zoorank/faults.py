"""Fault injection for the reliability tests: ``ZOORANK_KILL_AT=<point>`` makes the process
SIGKILL itself when it reaches that point (a real ``kill -9`` at a precise place).

Points: ``features`` (labels and source outputs published, features not yet),
``svm_logits`` / ``ntk_eigenvalues`` / ``score`` (computed, not yet published),
``mlflow`` (parent run created, pairs half logged). Unset in normal use: a no-op.
"""
from __future__ import annotations

import os
import signal

ENV = "ZOORANK_KILL_AT"


def kill_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
