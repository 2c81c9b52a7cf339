"""Bad input and damaged state through the real pipeline: clear errors, nothing lost."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoorank.api import rank
from zoorank.cli import main as cli_main
from zoorank.config import Settings

pytestmark = pytest.mark.integration

ZOO = ["cnn_mnist", "cnn_usps", "cnn_digitrec"]
METRICS = ["lead", "logme", "knn"]


def _chunk_files(store: Path, stage: str) -> list[Path]:
    root = store / stage
    return sorted(p for p in root.rglob("*") if p.is_file() and "c" in p.relative_to(root).parts)


def test_corrupted_and_deleted_entries_are_recomputed_not_read(prefect_server, settings):
    first = rank(ZOO, "digits", per_class=5, metrics=METRICS, settings=settings, track=False)
    # damage one features chunk (truncate) and delete one SVM-logits entry outright
    chunk = _chunk_files(settings.store, "features")[0]
    chunk.write_bytes(chunk.read_bytes()[: max(1, chunk.stat().st_size // 2)])
    svm_entries = [p for p in (settings.store / "svm_logits").iterdir() if p.is_dir()]
    import shutil
    shutil.rmtree(svm_entries[0])

    again = rank(ZOO, "digits", per_class=5, metrics=METRICS, settings=settings, track=False)
    full = 3 + len(METRICS)
    recomputed = int((full - again["cached_stages"]).sum())
    # the damaged features entry recomputes (and, its checksum being identical, nothing downstream);
    # the deleted SVM entry recomputes; all else is served from cache
    assert recomputed == 2
    np.testing.assert_allclose(again[METRICS].to_numpy(), first[METRICS].to_numpy(), rtol=1e-10)


def test_unreachable_tracking_uri_fails_fast_and_names_it(tmp_path):
    settings = Settings.from_env(env={}, home=tmp_path / "zr", tracking_uri="http://127.0.0.1:9")
    with pytest.raises(Exception, match="127.0.0.1:9"):
        rank(["cnn_mnist"], "digits", per_class=4, metrics=["logme"], settings=settings)
    assert not (settings.store / "features").exists()   # failed before any work was done


def test_unwritable_store_is_named(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = cli_main(["rank", "--zoo", "cnn_mnist", "--dataset", "digits", "--per-class", "2",
                     "--home", str(tmp_path / "zr"), "--store", str(blocker / "store.zarr")])
    assert code == 2
    assert str(blocker) in capsys.readouterr().err


def test_cli_rejects_unknown_ids_with_suggestions(capsys, tmp_path):
    assert cli_main(["rank", "--zoo", "mobilenet_v3", "--dataset", "digits",
                     "--home", str(tmp_path / "zr")]) == 2
    err = capsys.readouterr().err
    assert "mobilenet_v3" in err and "mobilenet_v2" in err
