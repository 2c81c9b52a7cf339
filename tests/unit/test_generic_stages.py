"""Issue 12: a metric declares its own cached upstream stage and the pipeline runs it, with no
pipeline code touched: computed, cached, keyed, recomputed on a version change; also through the
Prefect rank flow (real temporary server). And LEAD's image-level whole-network NTK stage."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from zoorank.metrics import registry
from zoorank.pipeline import stages
from zoorank.pipeline.pair_run import score_pair
from zoorank.pipeline.upstream import PairRef, plan_metric, plan_metrics, upstream_key
from zoorank.storage.arrays import ArrayStore
from zoorank.storage.keys import content_key

CALLS = {"toy_stage": 0}


def toy_class_means(features, labels, *, power: float = 1.0, sample_ids=None) -> np.ndarray:
    """The toy stage: per class, the mean of ``|x|^power`` over the class's rows."""
    CALLS["toy_stage"] += 1
    x = np.abs(np.asarray(features, dtype=np.float64)) ** power
    classes = np.unique(labels)
    return np.array([x[labels == c].mean() for c in classes])


def toy_score(features, labels, *, class_means=None, offset: float = 0.0) -> float:
    """The toy metric: the mean of its stage's output, plus ``offset``."""
    return float(np.mean(class_means)) + offset


TOY_STAGE = registry.Upstream("toy_class_means", f"{__name__}:toy_class_means", "class_means",
                              from_metric={"toy_power": "power"}, unkeyed=())
TOY = registry.Metric("toy", f"{__name__}:toy_score", upstream=(TOY_STAGE,), paper="test only")


@pytest.fixture
def toy_metric():
    registry.register_metric(TOY)
    CALLS["toy_stage"] = 0
    yield TOY
    registry.unregister_metric("toy")


@pytest.fixture
def stored_pair(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = np.repeat(np.arange(3), 10).astype(np.int64)
    store = ArrayStore(tmp_path / "s.zarr")
    keys = stages.feature_keys("toy@1", "toy-data", has_outputs=False)
    store.put(keys.features, x)
    store.put(keys.labels, y)
    store.put(keys.sample_ids, np.arange(30, dtype=np.int64))
    return store, PairRef(keys, "toy@1", "toy-data", "toy / data"), x, y


def test_a_registered_metrics_stage_is_computed_cached_keyed_and_versioned(toy_metric, stored_pair):
    store, pair, x, y = stored_pair
    plans = plan_metrics(["toy"], {"toy": {"offset": 0.5}})
    results, scores, upstream = score_pair(store, pair, plans)
    (res,) = results
    assert not res.cache_hit and CALLS["toy_stage"] == 1
    expected = np.array([np.abs(x[y == c]).mean() for c in range(3)])
    np.testing.assert_allclose(store.get(res.key), expected, rtol=1e-6)
    assert scores["toy"].info["score"] == pytest.approx(expected.mean() + 0.5, rel=1e-6)
    assert upstream == {"toy": {"class_means": res.key}}
    # the key: the stage name, its version, its inputs' checksums and its keyed parameters
    parts = {n: store.checksum(getattr(pair.keys, n)) for n in ("features", "labels", "sample_ids")}
    assert res.key == content_key("toy_class_means", stage_version=1, **parts, params={})
    # cached: nothing recomputed, same keys
    again, again_scores, _ = score_pair(store, pair, plans)
    assert again[0].cache_hit and again_scores["toy"].cache_hit and CALLS["toy_stage"] == 1
    # a metric parameter the stage maps goes to the stage: another key, computed once
    powered = score_pair(store, pair, plan_metrics(["toy"], {"toy": {"toy_power": 2.0}}))[0][0]
    assert powered.key != res.key and not powered.cache_hit and CALLS["toy_stage"] == 2
    np.testing.assert_allclose(store.get(powered.key), [np.mean(x[y == c] ** 2) for c in range(3)], rtol=1e-6)
    # a version bump declared in the registry: a new key, recomputed, the score follows
    registry.register_metric(dataclasses.replace(TOY, upstream=(dataclasses.replace(TOY_STAGE, version=2),)),
                             replace=True)
    bumped, bumped_scores, _ = score_pair(store, pair, plan_metrics(["toy"], {"toy": {"offset": 0.5}}))
    assert bumped[0].key != res.key and not bumped[0].cache_hit and CALLS["toy_stage"] == 3
    # the score is keyed by the output's checksum: the same values give the same (cached) score
    assert bumped_scores["toy"].key == scores["toy"].key and bumped_scores["toy"].cache_hit


def test_unknown_selector_value_and_input_are_refused(toy_metric):
    with pytest.raises(ValueError, match="ntk='nope'; choose from"):
        plan_metric("lead", {"ntk": "nope"})
    with pytest.raises(ValueError, match="unknown input"):
        registry.Upstream("bad", "x:y", "z", inputs=("pixels",))
    with pytest.raises(ValueError, match="already registered"):
        registry.register_metric(TOY)


@pytest.mark.integration
def test_a_registered_metric_runs_through_the_prefect_rank_flow(toy_metric, prefect_server, settings):
    from zoorank.api import rank

    res = rank(["cnn_mnist", "cnn_usps"], "digits", per_class=4, metrics=["toy", "logme"], settings=settings,
               track=False, details=True, use_cache_path=False)
    assert np.isfinite(res.table["toy"]).all() and CALLS["toy_stage"] == 2
    assert (res.table["cached_stages"] == 0).all()
    again = rank(["cnn_mnist", "cnn_usps"], "digits", per_class=4, metrics=["toy", "logme"], settings=settings,
                 track=False, use_cache_path=False)
    assert CALLS["toy_stage"] == 2 and (again["cached_stages"] == 4).all()   # features, toy stage, 2 scores
    np.testing.assert_allclose(again.sort_values("model")["toy"], res.table.sort_values("model")["toy"])


# ------------------------------------------------------------------ LEAD's whole-network NTK stage
class TinyNet(nn.Module):
    """A backbone with parameters (so the network NTK has a backbone share)."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(input_size=(8, 8), feature_dim=4, model_id="tiny")
        generator = torch.Generator().manual_seed(0)       # the same network every time
        self.conv = nn.Conv2d(3, 4, 3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=generator))

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))

    def forward_with_outputs(self, x):
        return self.forward(x), None


class CountingSources:
    def __init__(self, images):
        self._images, self.loads = images, 0

    def images(self):
        return self._images

    def load_backbone(self, device):
        self.loads += 1
        return TinyNet()


def test_network_ntk_is_an_image_level_stage_of_lead_computed_once(tmp_path):
    from zoorank.data import load_dataset
    from zoorank.metrics.lead import network_ntk_eigenvalues

    images = stages.select_subset(load_dataset("digits"), stages.SubsetSpec(per_class=3))
    store = ArrayStore(tmp_path / "s.zarr")
    keys = stages.feature_keys("tiny@0", images.fingerprint(), has_outputs=False)
    stages.ensure_features(store, keys, TinyNet, images)
    pair = PairRef(keys, "tiny@0", images.fingerprint(), "tiny / digits")
    params = {"lead": {"ntk": "network", "samples_per_class": 2, "head_widths": (8,), "cross_fit": 0}}
    plans = plan_metrics(["lead"], params)
    assert [s.stage.name for s in plans[0].stages] == ["svm_logits", "network_ntk_eigenvalues"]
    sources = CountingSources(images)
    results, scores, upstream = score_pair(store, pair, plans, sources=sources)
    ntk = {r.stage: r for r in results}["network_ntk_eigenvalues"]
    assert not ntk.cache_hit and sources.loads == 1 and np.isfinite(scores["lead"].info["score"])
    # the stage's value: the metric's function on the same backbone and the selected images, the
    # head input standardised with the statistics of the pair's cached features (LEAD's default)
    from zoorank.pipeline.upstream import image_rows

    direct = network_ntk_eigenvalues(TinyNet(), image_rows(images, (8, 8)), images.labels, samples_per_class=2,
                                     head_widths=(8,), sample_ids=images.rows, feature_norm="standard",
                                     features=store.get(keys.features))
    np.testing.assert_allclose(store.get(ntk.key), direct, rtol=1e-5)
    # keyed by model identity, subset, sample ids and keyed params; not by device or chunk size
    (plan,) = [s for s in plans[0].stages if s.stage.name == "network_ntk_eigenvalues"]
    chunked = dataclasses.replace(plan, params={**plan.params, "chunk_size": 1, "device": "cpu"})
    assert upstream_key(store, chunked, pair) == ntk.key
    other = PairRef(keys, "tiny@1", images.fingerprint())
    assert upstream_key(store, plan, other) != ntk.key
    # a cached rerun does not load the backbone
    again, again_scores, _ = score_pair(store, pair, plans, sources=sources)
    assert all(r.cache_hit for r in again) and again_scores["lead"].cache_hit and sources.loads == 1
    # LEAD's default kernel is not inert: without it (eta_t=0, the SVM's initial logits) the score
    # moves by eta_t * lambda / K ~ 0.1 of the way to the labels, far above rounding (1e-7)
    _, plain, _ = score_pair(store, pair, plan_metrics(["lead"], {"lead": {**params["lead"], "eta_t": 0.0}}),
                             sources=sources)
    assert abs(plain["lead"].info["score"] - scores["lead"].info["score"]) > 1e-3 and sources.loads == 1
    # the head-only kernel is the other declared stage (a different name and key)
    head = plan_metrics(["lead"], {"lead": {**params["lead"], "ntk": "head"}})[0]
    assert [s.stage.name for s in head.stages] == ["svm_logits", "ntk_eigenvalues"]


def test_lead_defaults_to_the_whole_network_kernel_on_standardised_features():
    """LEAD's default plan (issue 13): the paper's kernel over F = h o f, S = 8 per class, the head
    input standardised per coordinate; the head-only kernel only when asked for."""
    plan = plan_metrics(["lead"])[0]
    assert [s.stage.name for s in plan.stages] == ["svm_logits", "network_ntk_eigenvalues"]
    ntk = plan.stages[1]
    assert ntk.params["feature_norm"] == "standard" and ntk.params["samples_per_class"] == 8
    assert "features" in ntk.stage.inputs and "backbone" in ntk.stage.inputs

