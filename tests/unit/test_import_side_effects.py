"""Issue 12: importing any module of the package changes nothing: not ``os.environ`` (the offline
defaults are applied when a flow runs), not the working directory (no ``./.zoorank/prefect``), not
the stage versions of the cache keys. Checked in a fresh interpreter in an empty folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import importlib, json, os, pkgutil, sys
    # third-party libraries that set variables when imported (OpenMP flags: scikit-learn,
    # threadpoolctl): imported first, so that what is checked is zoorank's own doing
    import sklearn, threadpoolctl
    before_env = dict(os.environ)
    before_files = sorted(os.listdir("."))
    import zoorank
    from zoorank.storage.keys import STAGE_VERSIONS
    versions = dict(STAGE_VERSIONS)
    failed, names = {}, []
    for mod in pkgutil.walk_packages(zoorank.__path__, "zoorank."):
        if mod.name.endswith(".__main__"):   # importing a __main__ is running the program
            continue
        names.append(mod.name)
        try:
            importlib.import_module(mod.name)
        except Exception as exc:  # reported, the others are still imported
            failed[mod.name] = f"{type(exc).__name__}: {exc}"
    env = dict(os.environ)
    print(json.dumps({
        "modules": names, "failed": failed,
        "env_added": sorted(set(env) - set(before_env)),
        "env_removed": sorted(set(before_env) - set(env)),
        "env_changed": sorted(k for k in env if k in before_env and env[k] != before_env[k]),
        "files": sorted(os.listdir(".")), "files_before": before_files,
        "stage_versions_changed": dict(STAGE_VERSIONS) != versions,
    }))
""")


@pytest.mark.slow   # imports torch, Prefect, MLflow, scikit-learn...: ~20 s on 2 loaded cores
def test_importing_every_module_changes_no_environment_and_no_folder(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "ZOORANK_", "MLFLOW_", "_MLFLOW", "DO_NOT_TRACK", "DASK_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # the one variable zoorank.storage.tracking sets at import, if absent, because mlflow's import
    # starts its telemetry otherwise (a documented exception): given here as a user would
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(res["modules"]) > 50 and "zoorank.orchestration.flows.rank" in res["modules"]
    assert res["failed"] == {}
    assert res["env_added"] == [] and res["env_removed"] == [] and res["env_changed"] == []
    assert res["files"] == res["files_before"] == []
    assert not res["stage_versions_changed"]
