"""Where zoorank keeps things: one project folder with embedded defaults, every location overridable.

Defaults (everything under one folder, ``./.zoorank`` unless ``ZOORANK_HOME`` says otherwise)::

    <home>/store.zarr     Zarr v3 store of cached arrays (features, SVM logits, eigenvalues, ...)
    <home>/mlflow.db      SQLite MLflow tracking store  (tracking_uri = sqlite:///<abs home>/mlflow.db)
    <home>/artifacts      MLflow artifact root (ranking tables, plots)
    <home>/prefect        PREFECT_HOME for the temporary Prefect server and its result/cache records

Precedence for every field: explicit override (``Settings.from_env(store=...)``, i.e. a CLI flag)
> environment variable > default.

=====================  =====================================================
field                  environment variables (first one set wins)
=====================  =====================================================
home                   ZOORANK_HOME
store                  ZOORANK_STORE
tracking_uri           ZOORANK_TRACKING_URI, MLFLOW_TRACKING_URI
artifact_root          ZOORANK_ARTIFACT_ROOT
prefect_home           ZOORANK_PREFECT_HOME, PREFECT_HOME
experiment             ZOORANK_EXPERIMENT
read_store             ZOORANK_READ_STORE  (optional: a read-only store read before computing)
=====================  =====================================================

Paths are made absolute when the settings are built, so that tasks running in another working
directory (Prefect workers, Dask workers, subprocesses) see the same locations; pass
``Settings.as_env()`` to child processes.

This module imports nothing heavy (no prefect, zarr or mlflow).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = ["Settings", "apply_offline_defaults", "OFFLINE_DEFAULTS", "DEFAULT_RANK_BY"]

#: The metric a ranking is ordered by (and whose per-image scores give the tie set at the top)
#: unless the caller says otherwise: LEAD (Hu et al., CVPR 2024).
DEFAULT_RANK_BY = "lead"

#: Environment defaults that keep Prefect and MLflow offline, quiet and patient (docs/operations.md).
OFFLINE_DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # default 20 s is too short on 2 cores
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",  # MLflow accepts only "true"
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "DASK_LOGGING__DISTRIBUTED": "warning",
}


def _first_env(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value is not None and value.strip() != "":
            return value.strip()
    return None


def _abs(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.expanduser(os.fspath(path))).absolute()


def sqlite_uri(path: str | os.PathLike[str]) -> str:
    """``sqlite:///`` URI for an absolute path (gives four slashes on POSIX, as SQLAlchemy wants)."""
    return "sqlite:///" + _abs(path).as_posix()


@dataclass(frozen=True)
class Settings:
    """Locations used by zoorank. Build with :meth:`from_env`; all paths are absolute."""

    home: Path
    store: Path
    tracking_uri: str
    artifact_root: Path
    prefect_home: Path
    experiment: str = "zoorank"
    #: A store read (never written) behind ``store``: a team's shared cache (zoorank.storage.layered).
    read_store: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Settings from overrides (None values ignored), then the environment, then defaults.

        ``env`` defaults to ``os.environ``. Derived defaults (store, tracking URI, artifacts,
        Prefect home) follow ``home`` when only ``home`` is overridden.
        """
        env = os.environ if env is None else env
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"Settings.from_env got unknown field(s): {sorted(unknown)}")
        ov = {k: v for k, v in overrides.items() if v is not None}

        home = _abs(ov.get("home") or _first_env(env, "ZOORANK_HOME") or "./.zoorank")
        store = _abs(ov.get("store") or _first_env(env, "ZOORANK_STORE") or home / "store.zarr")
        tracking_uri = str(
            ov.get("tracking_uri")
            or _first_env(env, "ZOORANK_TRACKING_URI", "MLFLOW_TRACKING_URI")
            or sqlite_uri(home / "mlflow.db")
        )
        artifact_root = _abs(
            ov.get("artifact_root") or _first_env(env, "ZOORANK_ARTIFACT_ROOT") or home / "artifacts"
        )
        prefect_home = _abs(
            ov.get("prefect_home")
            or _first_env(env, "ZOORANK_PREFECT_HOME", "PREFECT_HOME")
            or home / "prefect"
        )
        experiment = str(ov.get("experiment") or _first_env(env, "ZOORANK_EXPERIMENT") or "zoorank")
        read_store = ov.get("read_store") or _first_env(env, "ZOORANK_READ_STORE")
        return cls(
            home=home,
            store=store,
            tracking_uri=tracking_uri,
            artifact_root=artifact_root,
            prefect_home=prefect_home,
            experiment=experiment,
            read_store=_abs(read_store) if read_store else None,
        )

    def as_env(self) -> dict[str, str]:
        """Environment variables that reproduce these settings in a child process."""
        env = {
            "ZOORANK_HOME": str(self.home),
            "ZOORANK_STORE": str(self.store),
            "ZOORANK_TRACKING_URI": self.tracking_uri,
            "ZOORANK_ARTIFACT_ROOT": str(self.artifact_root),
            "ZOORANK_PREFECT_HOME": str(self.prefect_home),
            "ZOORANK_EXPERIMENT": self.experiment,
        }
        if self.read_store is not None:
            env["ZOORANK_READ_STORE"] = str(self.read_store)
        return env

    def describe(self) -> dict[str, str]:
        """Human-readable mapping of every location (for ``zoorank`` output)."""
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}


def apply_offline_defaults(settings: Settings | None = None) -> dict[str, str]:
    """Set the offline-safe environment defaults (``os.environ.setdefault``; user values win).

    Also sets ``PREFECT_HOME`` to ``settings.prefect_home`` (default settings from the
    environment). Must run before ``import prefect`` to take full effect; this function does
    not import prefect. Returns the values now in effect for the variables it manages.
    """
    settings = settings or Settings.from_env()
    managed = dict(OFFLINE_DEFAULTS)
    managed["PREFECT_HOME"] = str(settings.prefect_home)
    applied = {name: os.environ.setdefault(name, value) for name, value in managed.items()}
    prefect_home = Path(applied["PREFECT_HOME"])
    try:  # Prefect cannot create nested folders itself; its server then never starts
        prefect_home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"cannot create the Prefect home folder {prefect_home}: {exc.strerror or exc}") from None
    return applied
