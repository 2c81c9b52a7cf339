"""Whole-network NTK of LEAD (``zoorank.metrics.lead.network_ntk``): exactness against an
independent per-sample autograd loop, trace == eig, additivity over parameter sets, the
reparameterisation a head-only kernel cannot see, reproducibility on a real zoo backbone,
determinism and bad input."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from zoorank.metrics.lead import init_random_head
from zoorank.metrics.lead.network_ntk import (
    network_ntk_eigenvalues,
    network_ntk_parts,
    select_ntk_samples,
)

WIDTHS = (16, 24)


class SmallNet(nn.Module):
    """conv -> BN -> ReLU (in place) -> conv (stride 2) -> BN -> ReLU -> mean pool: (B, 6)."""

    def __init__(self, bn: bool = True, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2)
        self.bn2 = nn.BatchNorm2d(6) if bn else nn.Identity()
        self.fc = nn.Linear(6, 5)
        for m in self.modules():            # non-trivial eval statistics and affine parameters
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.uniform_(m.bias, -0.2, 0.2)

    def forward(self, x):
        x = torch.relu_(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


def _data(n=30, k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=gen, dtype=torch.float64)
    y = np.arange(n) % k
    return x, y


def _reference(net, x, y, *, params="all", s=4, feature_norm="none", random_state=0, kernel=False,
               only=None, stats=None):
    """Independent formulation: one autograd call per sample on a float64 copy of the net and
    an explicit head, summed squared gradients (or the explicit kernel's mean eigenvalue)."""
    net = copy.deepcopy(net).double().eval()
    k = int(y.max()) + 1
    idx = select_ntk_samples(np.asarray(y), k, s, None, random_state)
    with torch.no_grad():
        d = net(x[:1]).shape[1]
    head = [(w.clone().requires_grad_(True), b.clone().requires_grad_(True))
            for w, b in init_random_head(d, k, WIDTHS, random_state=random_state, dtype="float64")]
    theta = []
    if params in ("all", "backbone"):
        theta += [p for n, p in net.named_parameters() if only is None or n in only]
    if params in ("all", "head"):
        theta += [t for layer in head for t in layer]
    rows = {c: [] for c in range(k)}
    for i in idx:
        z = net(x[i:i + 1])
        if feature_norm == "l2":
            z = z / z.norm()
        elif feature_norm == "standard":
            z = (z - torch.as_tensor(stats[0])) / torch.as_tensor(stats[1])
        a = z
        for j, (w, b) in enumerate(head):
            a = a @ w.T + b
            if j < len(head) - 1:
                a = torch.relu(a)
        grads = torch.autograd.grad(a.sum(), theta, allow_unused=True)
        rows[int(y[i])].append(torch.cat([(torch.zeros_like(t) if g is None else g).reshape(-1)
                                          for g, t in zip(grads, theta)]))
    out = np.empty(k)
    for c in range(k):
        jac = torch.stack(rows[c])
        out[c] = (float(torch.linalg.eigvalsh(jac @ jac.T).mean()) if kernel
                  else float(jac.square().sum(dim=1).mean()))
    return out


def _lam(net, x, y, **kw):
    kw.setdefault("samples_per_class", 4)
    kw.setdefault("head_widths", WIDTHS)
    kw.setdefault("dtype", "float64")
    return network_ntk_eigenvalues(net, x, y, **kw)


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("engine", ["layers", "vmap"])
def test_trace_matches_independent_per_sample_autograd(engine):
    net, (x, y) = SmallNet(), _data()
    ref = _reference(net, x, y)
    got = _lam(net, x, y, engine=engine)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_trace_equals_eig_with_backbone_parameters_float64():
    net, (x, y) = SmallNet(), _data()
    tr = _lam(net, x, y, method="trace")
    eig = _lam(net, x, y, method="eig")
    np.testing.assert_allclose(tr, eig, rtol=1e-9)
    np.testing.assert_allclose(eig, _reference(net, x, y, kernel=True), rtol=1e-9)


def test_trace_equals_eig_float32():
    net, (x, y) = SmallNet(), _data()
    tr = _lam(net, x.float(), y, method="trace", dtype="float32")
    eig = _lam(net, x.float(), y, method="eig", dtype="float32")
    np.testing.assert_allclose(tr, eig, rtol=1e-6)


def test_all_is_backbone_plus_head_and_parts_agree():
    net, (x, y) = SmallNet(), _data()
    full, back, head = (_lam(net, x, y, params=p) for p in ("all", "backbone", "head"))
    np.testing.assert_allclose(full, back + head, rtol=1e-12)
    parts = network_ntk_parts(net, x, y, samples_per_class=4, head_widths=WIDTHS, dtype="float64")
    np.testing.assert_allclose(parts.backbone, back, rtol=1e-12)
    np.testing.assert_allclose(parts.head, head, rtol=1e-12)
    np.testing.assert_allclose(head, _reference(net, x, y, params="head"), rtol=1e-10)
    assert parts.engine == "layers" and parts.feature_dim == 5
    np.testing.assert_array_equal(parts.counts, [4, 4, 4])


def test_l2_head_input_is_differentiated_through():
    net, (x, y) = SmallNet(), _data()
    got = _lam(net, x, y, feature_norm="l2")
    np.testing.assert_allclose(got, _reference(net, x, y, feature_norm="l2"), rtol=1e-10)


def test_standardised_head_input_uses_the_given_statistics():
    net, (x, y) = SmallNet(), _data()
    with torch.no_grad():
        f = copy.deepcopy(net).double().eval()(x).numpy()
    stats = (f.mean(axis=0), f.std(axis=0))
    got = _lam(net, x, y, feature_norm="standard", feature_stats=stats)
    np.testing.assert_allclose(got, _reference(net, x, y, feature_norm="standard", stats=stats),
                               rtol=1e-10)


def test_chunk_size_changes_only_rounding():
    net, (x, y) = SmallNet(), _data()
    a = _lam(net, x, y, chunk_size=1)
    b = _lam(net, x, y, chunk_size=7)
    np.testing.assert_allclose(a, b, rtol=1e-12)


# ----------------------------------------------------------------------------- what the kernel sees
def test_reparameterised_backbone_changes_all_not_head():
    """conv1 x2 (weights and bias), ReLU, conv2 weights x0.5: the same features (ReLU is
    positively homogeneous), different gradients w.r.t. the backbone's parameters."""
    net, (x, y) = SmallNet(bn=False), _data()
    rep = copy.deepcopy(net)
    with torch.no_grad():
        rep.conv1.weight.mul_(2.0)
        rep.conv1.bias.mul_(2.0)
        rep.conv2.weight.mul_(0.5)
    with torch.no_grad():
        np.testing.assert_allclose(rep.double()(x).numpy(), net.double()(x).numpy(), rtol=1e-12)
    np.testing.assert_allclose(_lam(rep, x, y, params="head"), _lam(net, x, y, params="head"),
                               rtol=1e-12)
    a, b = _lam(net, x, y, params="all"), _lam(rep, x, y, params="all")
    assert np.all(np.abs(a - b) / a > 1e-4), (a, b)
    # by hand: the conv1 gradients halve (share / 4), conv2's weight gradient doubles (x 4)
    share = {n: _reference(net, x, y, params="backbone", only={n})
             for n in ("conv1.weight", "conv1.bias", "conv2.weight")}
    expected = -0.75 * (share["conv1.weight"] + share["conv1.bias"]) + 3.0 * share["conv2.weight"]
    np.testing.assert_allclose(b - a, expected, rtol=1e-8)


def test_unsupported_operation_falls_back_to_vmap_exactly():
    class Scaled(SmallNet):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor([1.5, 0.5, 2.0, 1.0, 0.7]))

        def forward(self, x):
            return super().forward(x) * self.scale      # a parameter outside conv/linear/BN

    net, (x, y) = Scaled(), _data()
    parts = network_ntk_parts(net, x, y, samples_per_class=4, head_widths=WIDTHS, dtype="float64")
    assert parts.engine == "vmap"
    np.testing.assert_allclose(parts.total, _reference(net, x, y), rtol=1e-10)
    with pytest.raises(ValueError, match="engine='layers'"):
        _lam(net, x, y, engine="layers")


# ----------------------------------------------------------------------------- determinism
def test_deterministic_and_invariant_to_joint_permutation():
    net, (x, y) = SmallNet(), _data(n=33)
    ids = np.arange(100, 133)
    a = _lam(net, x, y, sample_ids=ids)
    np.testing.assert_array_equal(a, _lam(net, x, y, sample_ids=ids))
    perm = np.random.default_rng(3).permutation(33)
    b = _lam(net, x[torch.as_tensor(perm)], y[perm], sample_ids=ids[perm])
    np.testing.assert_array_equal(a, b)
    c = _lam(net, lambda rows: x[torch.as_tensor(rows)], y, sample_ids=ids)   # callable images
    np.testing.assert_array_equal(a, c)


def test_training_flag_restored_and_module_untouched():
    net, (x, y) = SmallNet(), _data()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    _lam(net, x.float(), y, dtype="float32")
    assert net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]) and v.dtype == before[k].dtype, k


# ----------------------------------------------------------------------------- small classes
def test_short_class_uses_all_it_has_and_one_image_works():
    net, (x, y) = SmallNet(), _data(n=9)
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])          # class 2 has one image
    parts = network_ntk_parts(net, x, y, samples_per_class=4, head_widths=WIDTHS, dtype="float64")
    np.testing.assert_array_equal(parts.counts, [4, 2, 1])
    np.testing.assert_allclose(parts.total, _reference(net, x, y), rtol=1e-10)


def test_empty_class_is_named():
    net, (x, y) = SmallNet(), _data(n=12)
    y = np.array([0, 1, 3] * 4)
    with pytest.raises(ValueError, match=r"class\(es\) 2 have no images"):
        _lam(net, x, y, n_classes=4)
    assert _lam(net, x, y).shape == (3,)                 # without n_classes: 3 classes


# ----------------------------------------------------------------------------- bad input
def test_traced_backbone_refused_naming_model_and_head_option_works():
    net, (x, y) = SmallNet(), _data()
    with warnings.catch_warnings():                     # torch.jit.trace is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(net.eval(), x[:2].float())
    with pytest.raises(ValueError, match=r"'my_traced'.*params='head'"):
        network_ntk_eigenvalues(traced, x.float(), y, samples_per_class=4, head_widths=WIDTHS,
                                name="my_traced")
    lam = network_ntk_eigenvalues(traced, x.float(), y, params="head", samples_per_class=4,
                                  head_widths=WIDTHS)
    np.testing.assert_allclose(lam, _lam(net, x.float(), y, params="head", dtype="float32"),
                               rtol=1e-6)


def test_frozen_backbone_refused():
    net, (x, y) = SmallNet(), _data()
    net.requires_grad_(False)
    with pytest.raises(ValueError, match=r"'frozen_net'.*no parameter requires grad.*params='head'"):
        _lam(net, x, y, name="frozen_net")


@pytest.mark.parametrize("engine", ["auto", "vmap"])
def test_backbone_without_autograd_graph_never_gives_silent_zero(engine):
    class Detached(SmallNet):
        def forward(self, x):
            with torch.no_grad():
                return super().forward(x)

    net, (x, y) = Detached(), _data()
    with pytest.raises(ValueError, match=r"'detached'.*params='head'"):
        _lam(net, x, y, name="detached", engine=engine)


def test_bad_arguments_are_named():
    net, (x, y) = SmallNet(), _data()
    with pytest.raises(ValueError, match="images has 29 rows but labels has 30"):
        _lam(net, x[:29], y)
    with pytest.raises(ValueError, match="images must be float"):
        _lam(net, (x * 255).to(torch.uint8), y)
    with pytest.raises(ValueError, match="params must be one of"):
        _lam(net, x, y, params="body")
    with pytest.raises(ValueError, match="samples_per_class must be a positive integer"):
        _lam(net, x, y, samples_per_class=0)
    with pytest.raises(ValueError, match="feature_stats"):
        _lam(net, x, y, feature_norm="standard")
    with pytest.raises(ValueError, match=r"must return a tensor with 1 rows, got \(2, 3, 8, 8\)"):
        _lam(net, lambda rows: x[:2], y)


# ----------------------------------------------------------------------------- a real zoo backbone
def test_real_backbone_lambda_reproducible_across_head_seeds():
    """cnn_digitrec (default zoo) on scikit-learn digits, the same 8 images per class, three
    head seeds: the per-class whole-network lambda keeps its ranking (Spearman > 0.8)."""
    from zoorank.data import load_dataset
    from zoorank.compute.extract import to_model_input
    from zoorank.pipeline.pairs import load_backbone
    from zoorank.zoo import load_zoo

    spec = next(s for s in load_zoo("default") if getattr(s, "id", s) == "cnn_digitrec")
    backbone = load_backbone(spec)
    ds = load_dataset("digits")
    size = backbone.config.input_size

    def images(rows):
        return to_model_input(torch.from_numpy(np.asarray(ds.images(rows))), size)

    labels = np.asarray(ds.labels)
    runs = [network_ntk_parts(backbone, images, labels, samples_per_class=8, head_random_state=seed)
            for seed in (0, 1, 2)]
    for a, b in ((0, 1), (0, 2), (1, 2)):
        rho = scipy.stats.spearmanr(runs[a].total, runs[b].total).statistic
        assert rho > 0.8, (a, b, rho)
    assert all(r.engine == "layers" for r in runs)
    np.testing.assert_array_equal(runs[0].indices, runs[1].indices)   # same images
