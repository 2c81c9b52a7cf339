"""Input validation and the metric registry (names, orientation, dispatch)."""
import numpy as np
import pytest

from zoorank.metrics import registry
from zoorank.metrics.validation import check_features_labels, check_probabilities


def test_string_labels_are_mapped_and_float16_upcast():
    x = np.arange(12, dtype=np.float16).reshape(6, 2)
    chk = check_features_labels(x, ["cat", "dog", "cat", "emu", "dog", "emu"])
    assert chk.features.dtype == np.float64
    assert list(chk.classes) == ["cat", "dog", "emu"]
    assert chk.labels.tolist() == [0, 1, 0, 2, 1, 2]


@pytest.mark.parametrize("features, labels, msg", [
    (np.array([[0.0, np.nan], [1, 2]]), [0, 1], "features contains NaN"),
    (np.array([[0.0, np.inf], [1, 2]]), [0, 1], "features contains NaN or inf"),
    (np.zeros((3, 2)), [0, 1], "features has 3 rows but labels has 2"),
    (np.zeros((3, 2)), [1, 1, 1], "1 distinct class"),
    (np.zeros((0, 2)), [], "labels is empty"),
    (np.zeros((2, 2)), [0.5, 1.0], "non-integer"),
    (np.zeros((3,)), [0, 1, 2], "features must be 2-D"),
    (np.zeros((2, 2)), [[0, 1]], "labels must be 1-D"),
])
def test_bad_input_names_the_argument(features, labels, msg):
    with pytest.raises(ValueError, match=msg):
        check_features_labels(features, labels)


def test_probabilities_must_be_probabilities():
    with pytest.raises(ValueError, match="source_probs has negative"):
        check_probabilities([[-1.0, 2.0]], name="source_probs", n_rows=1)
    with pytest.raises(ValueError, match="sum to 1"):
        check_probabilities([[0.2, 0.2]], name="source_probs", n_rows=1)
    with pytest.raises(ValueError, match="source_probs has 1 rows but labels has 2"):
        check_probabilities([[0.5, 0.5]], name="source_probs", n_rows=2)


def test_registry_resolves_every_metric_and_all_are_oriented():
    for name, metric in registry.METRICS.items():
        assert callable(metric.fn), name
        assert metric.higher_is_better
        assert metric.fn.__doc__, f"{name} has no docstring"


def test_unknown_metric_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean logme"):
        registry.score("logmee", np.zeros((4, 2)), [0, 1, 0, 1])


def test_missing_required_input_is_named():
    with pytest.raises(ValueError, match="needs source_probs"):
        registry.score("leep", np.zeros((4, 2)), [0, 1, 0, 1])


def test_available_depends_on_inputs():
    without = registry.available({})
    with_src = registry.available({"source_probs": np.ones((2, 2))})
    assert "leep" not in without and "nce" not in without
    assert {"leep", "nce"} <= set(with_src)
    assert "lead" in without


def test_score_all_records_failures_and_goes_on():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    y = np.repeat(np.arange(4), 10)
    out = registry.score_all(x, y, names=["logme", "leep", "hscore"])
    assert isinstance(out["leep"], str) and "source_probs" in out["leep"]
    assert isinstance(out["logme"], float) and isinstance(out["hscore"], float)
    with pytest.raises(ValueError):
        registry.score_all(x, y, names=["leep"], errors="raise")


def _class_data(n_per_class, k=5, d=16, seed=0, separation=3.0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per_class)
    centres = rng.normal(size=(k, d)) * separation
    x = np.maximum(centres[y] + rng.normal(size=(len(y), d)), 0)  # ReLU-like, as backbones give
    logits = x[:, :8] @ rng.normal(size=(8, 20))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return x, y, probs / probs.sum(1, keepdims=True)


def test_every_metric_at_two_samples_per_class_is_finite_or_says_why():
    x, y, src = _class_data(2)
    for name in registry.METRICS:
        try:
            value = registry.score(name, x, y, source_probs=src)
        except ValueError as exc:
            assert str(exc), name        # a clear reason, never a silent NaN
        else:
            assert np.isfinite(value), name


def test_every_metric_prefers_real_labels_to_shuffled_ones():
    x, y, src = _class_data(20)
    shuffled = np.random.default_rng(1).permutation(y)
    for name in registry.METRICS:
        real = registry.score(name, x, y, source_probs=src)
        fake = registry.score(name, x, shuffled, source_probs=src)
        assert real > fake, name
