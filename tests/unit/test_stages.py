"""Pipeline stages on a real Zarr store (no Prefect): caching, chaining, failure modes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from zoorank.pipeline import stages
from zoorank.pipeline.upstream import PairRef, ensure_upstream, plan_metric
from zoorank.data import load_dataset
from zoorank.storage.arrays import ArrayStore


class MeanPool(nn.Module):
    """Features = per-channel means and a scaled copy; optional NaN for some images."""

    def __init__(self, nan_rows: bool = False):
        super().__init__()
        self.config = SimpleNamespace(input_size=(8, 8), feature_dim=6)
        self.nan_rows = nan_rows
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        f = torch.cat([x.mean(dim=(2, 3)), 2 * x.amax(dim=(2, 3))], dim=1)
        if self.nan_rows:
            f[0, 0] = float("nan")
        return f

    def forward_with_outputs(self, x):
        return self.forward(x), None


@pytest.fixture
def images():
    ds = load_dataset("digits")
    return stages.select_subset(ds, stages.SubsetSpec(per_class=4))


def test_select_subset_is_stratified_and_reproducible(images):
    assert np.bincount(images.labels).tolist() == [4] * 10
    again = stages.select_subset(load_dataset("digits"), stages.SubsetSpec(per_class=4))
    assert images.fingerprint() == again.fingerprint()
    other = stages.select_subset(load_dataset("digits"), stages.SubsetSpec(per_class=4, seed=1))
    assert other.fingerprint() != images.fingerprint()


def test_per_class_is_an_upper_bound():
    """per_class means "at most": a class with fewer images in the split is used whole."""
    ds = load_dataset("digits")
    whole = stages.select_subset(ds, stages.SubsetSpec(per_class=None))
    capped = stages.select_subset(ds, stages.SubsetSpec(per_class=1000))
    assert capped.fingerprint() == whole.fingerprint()
    some = stages.select_subset(ds, stages.SubsetSpec(per_class=150))
    counts = np.bincount(some.labels)
    assert np.array_equal(counts, np.minimum(np.bincount(whole.labels), 150)) and counts.min() < 150


def _lead_stage(store, keys, name, params, device=None):
    """LEAD's declared upstream stage ``name`` under ``stage_params`` ``params``."""
    lead = {"ntk": "head"} if name == "ntk_eigenvalues" else {}   # the head kernel is an option (issue 13)
    (plan,) = [s for s in plan_metric("lead", lead, {name: params}).stages if s.stage.name == name]
    return ensure_upstream(store, plan, PairRef(keys), device=device)


def test_features_cached_and_lead_stages_chain(tmp_path, images):
    store = ArrayStore(tmp_path / "s.zarr")
    keys = stages.feature_keys("meanpool@0", images.fingerprint(), has_outputs=False)
    model = MeanPool()
    first = stages.ensure_features(store, keys, lambda: model, images)
    assert not first.cache_hit and model.calls > 0
    calls = model.calls
    second = stages.ensure_features(store, keys, lambda: pytest.fail("loaded on a cache hit"), images)
    assert second.cache_hit and model.calls == calls
    np.testing.assert_array_equal(store.get(keys.labels), images.labels)

    svm = _lead_stage(store, keys, "svm_logits", {"cross_fit": 2})
    ntk = _lead_stage(store, keys, "ntk_eigenvalues", {"samples_per_class": 3, "head_widths": (16, 16)})
    assert store.get(svm.key).shape == (40, 10) and store.get(ntk.key).shape == (10,)
    inputs = {"log_init": svm.key, "class_eigenvalues": ntk.key}
    lead = stages.ensure_score(store, "lead", keys, upstream=inputs)
    direct = stages.metric_registry.score("lead", store.get(keys.features), images.labels,
                                          log_init=store.get(svm.key), class_eigenvalues=store.get(ntk.key))
    assert lead.info["score"] == pytest.approx(direct)
    assert stages.ensure_score(store, "lead", keys, upstream=inputs).cache_hit
    # a different parameter is a different key
    assert _lead_stage(store, keys, "svm_logits", {"cross_fit": 3}).key != svm.key


def test_lead_stage_keys_do_not_depend_on_the_device(tmp_path, images):
    """One cache entry serves the CPU and the GPU path (they run the same torch code); the
    stage records where it computed."""
    store = ArrayStore(tmp_path / "s.zarr")
    keys = stages.feature_keys("meanpool@0", images.fingerprint(), has_outputs=False)
    stages.ensure_features(store, keys, lambda: MeanPool(), images)
    first = _lead_stage(store, keys, "svm_logits", {"cross_fit": 2}, device="cpu")
    assert not first.cache_hit and first.info["device"] == "cpu"
    # the device named in the parameters or as the argument: same key, served from cache
    assert _lead_stage(store, keys, "svm_logits", {"cross_fit": 2, "device": "cpu"}).key == first.key
    other = "cuda" if torch.cuda.is_available() else "meta-device-never-used"
    again = _lead_stage(store, keys, "svm_logits", {"cross_fit": 2}, device=other)
    assert again.cache_hit and again.key == first.key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lead_stages_on_cuda_agree_with_cpu(tmp_path, images):
    from zoorank.metrics.lead import class_ntk_eigenvalues, svm_logits

    x = np.random.default_rng(0).normal(size=(200, 64)).astype(np.float32)
    y = np.repeat(np.arange(10), 20)
    np.testing.assert_allclose(svm_logits(x, y, device="cuda"), svm_logits(x, y), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(class_ntk_eigenvalues(x, y, device="cuda"), class_ntk_eigenvalues(x, y), rtol=1e-4)


def test_nan_backbone_is_refused_and_nothing_is_cached(tmp_path, images):
    store = ArrayStore(tmp_path / "s.zarr")
    keys = stages.feature_keys("nan@0", images.fingerprint(), has_outputs=False)
    with pytest.raises(ValueError, match=r"NaN/inf features for 1 of 40 images \(dataset 'digits'\)"):
        stages.ensure_features(store, keys, lambda: MeanPool(nan_rows=True), images, batch_size=64)
    assert not store.exists(keys.features)


def test_failing_metric_is_recorded_and_source_metrics_skipped(tmp_path, images):
    store = ArrayStore(tmp_path / "s.zarr")
    keys = stages.feature_keys("meanpool@0", images.fingerprint(), has_outputs=False)
    stages.ensure_features(store, keys, MeanPool, images)
    skipped = stages.ensure_score(store, "leep", keys)
    assert "no source-task outputs" in skipped.info["skipped"]
    failed = stages.ensure_score(store, "knn", keys, params={"k": -3})
    assert "error" in failed.info and not failed.cache_hit
    assert stages.ensure_score(store, "knn", keys, params={"k": -3}).info == failed.info


def test_score_keys_follow_each_metrics_own_version():
    """Bumping one metric's version changes its score keys only; version 1 keeps the keys
    written before metric versions existed."""
    import dataclasses

    from zoorank.storage.keys import content_key

    up, params = {"features": "sha256:aa", "labels": "sha256:bb"}, {"k": 3}
    lead, logme = (stages.metric_registry.get_metric(m) for m in ("lead", "logme"))
    lead = dataclasses.replace(lead, version=1)
    assert stages.score_key(lead, up, params) == content_key("scores", metric="lead", upstream=up, params=params)
    bumped = dataclasses.replace(lead, version=2)
    assert stages.score_key(bumped, up, params) != stages.score_key(lead, up, params)
    assert stages.score_key(logme, up, params) != stages.score_key(bumped, up, params)


def test_a_pairs_metrics_share_one_read_and_one_covariance(tmp_path, images):
    """Issue 17: LogME and both H-scores of one pair read the features once and compute the
    centred covariance once (one PairStats memo in ``pair_inputs``); the scores equal the
    metrics called one by one, and the sample identities are stored with the labels."""
    store = ArrayStore(tmp_path / "s.zarr")
    keys = stages.feature_keys("meanpool@0", images.fingerprint(), has_outputs=False)
    stages.ensure_features(store, keys, lambda: MeanPool(), images)
    np.testing.assert_array_equal(store.get(keys.sample_ids), images.rows)
    shared: dict = {}
    got = {m: stages.ensure_score(store, m, keys, pair_inputs=shared).info["score"]
           for m in ("logme", "hscore", "reg_hscore")}
    assert shared["stats"].computed.count("centred_cov") == 1
    x, y = store.get(keys.features), store.get(keys.labels)
    for m, value in got.items():
        assert value == pytest.approx(stages.metric_registry.score(m, x, y), rel=1e-12)


# ------------------------------------------------------------------ keys pinned before issue 12
# Computed with the code of commit 3468b64 (ensure_svm_logits / ensure_ntk_eigenvalues /
# ensure_score(lead_inputs=...) / benchmark.score_rows) on the fixed input below: the generic
# stage runner must give the very same keys, so every cached entry stays valid. (A metric whose
# version is bumped on purpose gets new keys: such metrics are not pinned here.)
PINNED = {
    "feature_keys": {"features": "features/b7bac9231647c631190f155b", "labels": "labels/7ac98927a7a69af4ab431440",
                     "source_probs": "source_probs/2c0cc7d6fd2e8acf8d98bd7d",
                     "sample_ids": "sample_ids/6ae25da223663ccb049c4526"},
    "svm": "svm_logits/f570f211537a50a8b27c5678", "ntk": "ntk_eigenvalues/cb434120f03bd8027bb5cf3b",
    "svm_cross_fit0": "svm_logits/a6093772d0e6f8a0c9d3fc3e",
    "scores": {"logme": "scores/25dcbdfb37757be94f8797ba",
               "leep": "scores/e49bdda09cb0443660ded755",
               "transrate": "scores/9cca9c47de001b1292741f00"},
    "rows": {"logme": "scores/7e9ad25e5bfd7ad97e6a138a", "leep": "scores/16ffc440157cb522a6519f5d"},
}


def _pinned_input(tmp_path):
    rng = np.random.default_rng(0)
    n, d, k = 24, 5, 3
    arrays = {"features": rng.normal(size=(n, d)).astype(np.float32),
              "labels": np.repeat(np.arange(k), n // k).astype(np.int64),
              "source_probs": rng.dirichlet(np.ones(4), size=n).astype(np.float32),
              "sample_ids": (np.arange(n) * 7 + 3).astype(np.int64)}
    store = ArrayStore(tmp_path / "s.zarr")
    keys = stages.feature_keys("toy-model@abc", "toy-dataset-fp", True)
    for name, a in arrays.items():
        store.put(getattr(keys, name), a)
    return store, keys


def _lead_as_declared_at_3468b64():
    """LEAD with the stage and score versions of commit 3468b64 (svm_logits 3, ntk_eigenvalues 3,
    score version 1; the head kernel, with its function's default head input, was the default
    then): later bumps (issue 13) re-key on purpose; the formula must not change."""
    import dataclasses

    from zoorank.metrics import registry

    lead = registry.get_metric("lead")
    old = {"svm_logits": 3, "ntk_eigenvalues": 3}
    return dataclasses.replace(lead, version=1, selectors={"ntk": "head"}, upstream=tuple(
        dataclasses.replace(u, version=old.get(u.name, u.version),
                            params={} if u.name == "ntk_eigenvalues" else u.params) for u in lead.upstream))


def test_cache_keys_are_the_ones_written_before_the_generic_stages(tmp_path, monkeypatch):
    from zoorank.metrics import registry
    from zoorank.pipeline.pair_run import score_pair
    from zoorank.pipeline.upstream import plan_metrics
    from zoorank.storage.keys import content_key

    monkeypatch.setitem(registry.METRICS, "lead", _lead_as_declared_at_3468b64())
    store, keys = _pinned_input(tmp_path)
    assert vars(keys) == PINNED["feature_keys"]
    pair = PairRef(keys, "toy-model@abc", "toy-dataset-fp")
    plans = plan_metrics(["lead", "logme", "leep", "transrate"])
    results, scores, upstream = score_pair(store, pair, plans)
    assert {r.stage: r.key for r in results} == {"svm_logits": PINNED["svm"], "ntk_eigenvalues": PINNED["ntk"]}
    assert upstream == {"lead": {"log_init": PINNED["svm"], "class_eigenvalues": PINNED["ntk"]}}
    assert {m: scores[m].key for m in ("logme", "leep", "transrate")} == \
        {m: PINNED["scores"][m] for m in ("logme", "leep", "transrate")}
    # LEAD's score key: the formula of 3468b64 over its stages' checksums (their values follow
    # LEAD's defaults, which issue 13 changed, so the pinned LEAD score keys hold only for them)
    sums = {n: store.checksum(getattr(keys, n)) for n in ("features", "labels", "sample_ids")}
    sums.update(log_init=store.checksum(PINNED["svm"]), class_eigenvalues=store.checksum(PINNED["ntk"]))
    assert scores["lead"].key == content_key("scores", metric="lead", upstream=sums, params={})
    _, eta, _ = score_pair(store, pair, plan_metrics(["lead"], {"lead": {"eta_t": 3.0}}))
    assert eta["lead"].key == content_key("scores", metric="lead", upstream=sums, params={"eta_t": 3.0})
    # a stage parameter reaches the stage (LEAD's own keyword routed there), not the score
    assert _lead_stage(store, keys, "svm_logits", {"cross_fit": 0}).key == PINNED["svm_cross_fit0"]
    routed = plan_metric("lead", {"cross_fit": 0})
    assert routed.score_params == {} and routed.stages[0].params == {"cross_fit": 0}
    # the benchmark's row subsets (formerly benchmark.score_rows): same keys
    rows = np.arange(0, 24, 2)
    for m in ("logme", "leep"):
        assert stages.ensure_score(store, m, keys, rows=rows).key == PINNED["rows"][m]
