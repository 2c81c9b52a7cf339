"""LEAD's NTK over the whole network ``F = h o f`` (Hu et al., CVPR 2024, Sec. 3.2 Eq. 3, Sec. 4.1).

The paper's theta is "the parameters of F", F := h o f: the pretrained backbone f (images ->
pooled features) with a random Kaiming MLP head h appended (widths 1024, 2048, ReLU, K
outputs). With the "sum of logits" approximation (Mohamadi & Sutherland, arXiv 2206.12543)
the kernel on two images is ``Phi_uv = grad_theta s(x_u) . grad_theta s(x_v)``, with
``s(x) = sum_j F_j(x)``; per class k, on S samples, ``lambda_k`` is the mean eigenvalue of
the S x S kernel. The mean eigenvalue is trace / S, i.e. exactly

    lambda_k = (1/S) sum_{i in class k} ||grad_theta s(x_i)||^2,

and because the squared norm is a sum over parameters it splits over disjoint parameter sets:
``lambda(all) = lambda(backbone) + lambda(head)`` (``params=``). The head share is the head-only
kernel's closed form (:func:`zoorank.metrics.lead.head_ntk_diag` on the head input); the backbone
share is the per-sample gradient of ``s`` backpropagated through the head and the backbone
(BatchNorm in eval mode), computed by autograd:

- ``engine="layers"``: one batched forward + backward per chunk, per-sample gradients from
  per-operation closed forms (:mod:`zoorank.metrics.lead.per_sample_grads`), checked on the first
  chunk against autograd's batch gradient. The fastest (``benchmarks/results/network_ntk.md``).
- ``engine="vmap"``: ``torch.func.vmap(grad(functional_call(...)))``: any differentiable
  network, explicit per-sample gradients (memory chunk x P).
- ``engine="auto"`` (default): "layers", or "vmap" when the network uses a parameter in an
  operation the layer engine does not cover (the choice is reported in
  :attr:`NetworkNTK.engine`).

``method="eig"`` builds the kernel explicitly (``vmap`` Jacobian of the backbone, the head-only kernel's
``head_jacobian`` of the head) and averages ``eigvalsh``: the reference path, for small
networks (memory S x P per class).

No official LEAD code exists; units and measured shares are in ``docs/lead_network_ntk.md``.
Pure function: no Prefect, Zarr, MLflow or file I/O; ``images`` is data or a callable the
caller supplies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from zoorank.metrics._common import sample_keys
from zoorank.metrics.lead.evolution import _choice
from zoorank.metrics.lead.head_ntk import (
    DEFAULT_HEAD_INPUT,
    DEFAULT_HEAD_WIDTHS,
    DEFAULT_SAMPLES_PER_CLASS,
    head_jacobian,
    head_ntk_diag,
    init_random_head,
)
from zoorank.metrics.lead.per_sample_grads import (
    Unsupported,
    jacobian_by_vmap,
    norms_by_layer,
    norms_by_vmap,
)
from zoorank.metrics.lead.sampling import ntk_sample_rows
from zoorank.metrics.lead.tensors import feature_moments, resolve_dtype
from zoorank.metrics.validation import encode_labels

__all__ = ["NetworkNTK", "default_chunk_size", "network_ntk_eigenvalues", "network_ntk_parts",
           "select_ntk_samples"]

_PARAMS = ("all", "backbone", "head")
_METHODS = ("trace", "eig")
_ENGINES = ("auto", "layers", "vmap")
_FEATURE_NORMS = ("none", "l2", "standard")

ImagesArg = torch.Tensor | np.ndarray | Callable[[np.ndarray], torch.Tensor]


@dataclass(frozen=True)
class NetworkNTK:
    """Per-class parts of lambda (float64, order = sorted labels or ``0..n_classes-1``).

    ``backbone``/``head``: the backbone's and the head's share of the mean eigenvalue (zeros
    for a part not requested); ``counts``: samples used per class; ``indices``: the rows used,
    in (class, key) order; ``engine``: the engine that ran ("layers", "vmap", or "none" for
    ``params="head"``); ``feature_dim``: D; ``sample_backbone`` / ``sample_head``: the
    per-image squared gradient norms (one per row of ``indices``) that the shares average, so
    that a smaller S (a prefix of each class's rows) can be read off without recomputing.
    """

    backbone: np.ndarray
    head: np.ndarray
    counts: np.ndarray
    indices: np.ndarray
    engine: str
    feature_dim: int
    sample_backbone: np.ndarray | None = None
    sample_head: np.ndarray | None = None

    @property
    def total(self) -> np.ndarray:
        return self.backbone + self.head


# ----------------------------------------------------------------------------- inputs
def _model_name(backbone, name):
    if name is not None:
        return str(name)
    return str(getattr(getattr(backbone, "config", None), "model_id", None) or type(backbone).__name__)


def _codes(labels, n_classes):
    """Codes 0..K-1 and K; with ``n_classes`` the labels are the codes and every class must
    have images."""
    if n_classes is None:
        codes, classes = encode_labels(labels)
        return codes, len(classes)
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"with n_classes, labels must be integer class codes, got dtype {arr.dtype}")
    k = int(n_classes)
    if k < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    if arr.min() < 0 or arr.max() >= k:
        raise ValueError(f"labels must lie in 0..{k - 1} (n_classes={k}), got range "
                         f"{int(arr.min())}..{int(arr.max())}")
    counts = np.bincount(arr, minlength=k)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ValueError(f"class(es) {', '.join(map(str, empty[:10].tolist()))} have no images "
                         f"(n_classes={k}); the NTK needs at least one image per class")
    return arr.astype(np.int64), k


def select_ntk_samples(codes: np.ndarray, n_classes: int, samples_per_class: int,
                       sample_ids=None, random_state: int = 0) -> np.ndarray:
    """Rows of the NTK sample: per class the ``min(n_k, S)`` rows with the smallest seeded key
    of their identity (the rule and salt of the head-only NTK, so both kernels see the same
    images), in (class, key) order. The pipeline calls it to load only these images."""
    keys = sample_keys(codes.shape[0], sample_ids, random_state)
    return ntk_sample_rows(codes, keys, int(samples_per_class))


def _image_loader(images, n: int, name: str):
    """``rows -> tensor`` over the dataset's rows."""
    if callable(images) and not isinstance(images, (torch.Tensor, np.ndarray)):
        def load(rows):
            batch = images(rows)
            if isinstance(batch, np.ndarray):
                batch = torch.from_numpy(batch)
            if not isinstance(batch, torch.Tensor) or batch.shape[0] != len(rows):
                got = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
                raise ValueError(f"{name}: images({len(rows)} rows) must return a tensor with "
                                 f"{len(rows)} rows, got {got}")
            return batch
        return load
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name}: images must be a tensor (N, C, H, W), an array or a callable "
                        f"rows -> tensor, got {type(images).__name__}")
    if images.shape[0] != n:
        raise ValueError(f"{name}: images has {images.shape[0]} rows but labels has {n}")
    return lambda rows: images[torch.as_tensor(rows, device=images.device)]


def _prepare_batch(batch: torch.Tensor, name: str, dtype, device) -> torch.Tensor:
    if not batch.is_floating_point():
        raise ValueError(f"{name}: images must be float (already preprocessed for the backbone), "
                         f"got {batch.dtype}")
    batch = batch.to(device=device, dtype=dtype)
    if not torch.isfinite(batch).all():
        raise ValueError(f"{name}: images contain NaN or inf")
    return batch


# ----------------------------------------------------------------------------- the network
class _Network:
    """The backbone as a pure function of (copies of) its tensors, in ``dtype`` on ``device``,
    followed by the head input normalisation and the random head."""

    def __init__(self, backbone, name, want_grads, dtype, device, feature_norm, feature_stats):
        self.backbone, self.name = backbone, name
        self.dtype, self.device = dtype, device
        self.feature_norm = feature_norm
        self.stats = None
        if feature_norm == "standard":
            if feature_stats is None:
                raise ValueError("feature_norm='standard' needs feature_stats=(mean, std), the "
                                 "per-dimension statistics of all N features")
            mean, std = (torch.as_tensor(np.asarray(s, dtype=np.float64)).to(device=device, dtype=dtype)
                         for s in feature_stats)
            self.stats = (mean, torch.where(std > 0, std, torch.ones_like(std)))
        elif feature_stats is not None:
            raise ValueError(f"feature_stats is only used with feature_norm='standard', got {feature_norm!r}")
        scripted = isinstance(backbone, torch.jit.ScriptModule)
        chosen = [(n, p) for n, p in backbone.named_parameters() if p.requires_grad]
        if want_grads and (scripted or not chosen):
            why = ("a TorchScript / traced module (functional calls and per-sample autograd are "
                   "not available)" if scripted else "no parameter requires grad (frozen)")
            raise ValueError(f"model {name!r} cannot give gradients w.r.t. its parameters: it is "
                             f"{why}. Use params='head' (the NTK of the random head on its "
                             "features; for LEAD: ntk='head', on the command line --param lead.ntk=head), "
                             "or load the model as an nn.Module with trainable parameters")
        self.scripted = scripted
        self.trainable: dict[str, torch.Tensor] = {}
        self.frozen: dict[str, torch.Tensor] = {}
        if not scripted:
            names = {n for n, _ in chosen}
            for n, p in backbone.named_parameters():
                t = self._cast(p.detach())
                if want_grads and n in names:
                    self.trainable[n] = t.requires_grad_(True)
                else:
                    self.frozen[n] = t
            for n, b in backbone.named_buffers():
                self.frozen[n] = self._cast(b)
        self.head = None

    def _cast(self, t):
        return t.to(device=self.device, dtype=self.dtype if t.is_floating_point() else t.dtype)

    def features(self, x, params=None):
        """Pooled features (B, D) of a batch; ``params`` overrides the trainable tensors."""
        if self.scripted:
            with torch.no_grad():       # on the caller's device and dtype (never moved)
                f = self.backbone(x)
        else:
            from torch.func import functional_call

            f = functional_call(self.backbone, (self.trainable if params is None else params,
                                                self.frozen), (x,))
        if not isinstance(f, torch.Tensor):
            raise ValueError(f"model {self.name!r} must return a features tensor (B, D), "
                             f"got {type(f).__name__}")
        return f.reshape(f.shape[0], -1)

    def head_input(self, f):
        if self.feature_norm == "l2":
            norm = torch.linalg.vector_norm(f, dim=1, keepdim=True)
            return f / torch.where(norm > 0, norm, torch.ones_like(norm))
        if self.feature_norm == "standard":
            return (f - self.stats[0]) / self.stats[1]
        return f

    def sum_of_logits(self, z):
        """``sum_j h_j(z)`` per row (B,)."""
        a = z
        for i, (w, b) in enumerate(self.head):
            a = a @ w.T + b
            if i < len(self.head) - 1:
                a = torch.relu(a)
        return a.sum(dim=1)

    # per-chunk objective for the engines: s (B,) and the head input z (B, D)
    def objective(self, x):
        z = self.head_input(self.features(x))
        return self.sum_of_logits(z), z

    def objective_single(self, params, xi):
        z = self.head_input(self.features(xi.unsqueeze(0), params))
        return self.sum_of_logits(z)[0], z[0]


def _check_features(z: torch.Tensor, name: str):
    if not torch.isfinite(z).all():
        raise ValueError(f"model {name!r} produced NaN/inf features on the NTK sample")


# ----------------------------------------------------------------------------- trace
class _Engine:
    """Runs the chosen engine chunk by chunk; "auto" falls back from layers to vmap."""

    def __init__(self, net: _Network, engine: str):
        self.net, self.requested = net, engine
        self.kind = "vmap" if engine == "vmap" else "layers"
        self.checked = False

    def __call__(self, x):
        net = self.net
        if self.kind == "layers":
            try:
                out = norms_by_layer(net.objective, x, list(net.trainable.values()),
                                     check=not self.checked)
                self.checked = True
                return out
            except Unsupported as exc:
                reason = str(exc)
            if "no autograd graph" in reason:
                raise ValueError(f"model {net.name!r} cannot give gradients: its features do not "
                                 "depend on its parameters through autograd (a traced or converted "
                                 "graph without autograd, or a forward under no_grad). Use "
                                 "params='head'")
            if self.requested == "layers":
                raise ValueError(f"model {net.name!r}: engine='layers' cannot compute exact "
                                 f"per-sample gradients ({reason}); use engine='vmap' or 'auto'")
            self.kind = "vmap"
        return norms_by_vmap(net.objective_single, net.trainable, x)


def _trace_parts(net, load, idx, sel_codes, k, params, chunk_size, engine, progress):
    """Per-image backbone and head squared gradient norms over the rows ``idx``."""
    total = idx.shape[0]
    back = np.zeros(total)                  # per-image squared gradient norms, in idx order
    head = np.zeros(total)
    run = _Engine(net, engine) if params != "head" else None
    for s in range(0, total, chunk_size):
        rows = idx[s:s + chunk_size]
        x = _prepare_batch(load(rows), net.name, net.dtype, net.device)
        if run is None:
            with torch.no_grad():
                z = net.head_input(net.features(x))
        else:
            sq, z = run(x)
            back[s:s + chunk_size] = sq.cpu().numpy()
        _check_features(z, net.name)
        if params != "backbone":
            with torch.no_grad():
                head[s:s + chunk_size] = head_ntk_diag(z.detach(), net.head).to(torch.float64).cpu().numpy()
        if progress is not None:
            progress(min(s + chunk_size, total), total)
    used = "none" if run is None else run.kind
    return back, head, used


def _class_means(per_sample, sel_codes, k):
    return np.bincount(sel_codes, weights=per_sample, minlength=k) / np.bincount(sel_codes, minlength=k)


# ----------------------------------------------------------------------------- eig
def _eig_means(net, load, idx, sel_codes, k, params, progress):
    out = np.empty(k)
    for c in range(k):
        rows = idx[sel_codes == c]
        x = _prepare_batch(load(rows), net.name, net.dtype, net.device)
        kern = torch.zeros(len(rows), len(rows), dtype=torch.float64, device=net.device)
        if params == "head":
            with torch.no_grad():
                z = net.head_input(net.features(x))
        else:
            grads, z = jacobian_by_vmap(net.objective_single, net.trainable, x)
            for g in grads.values():
                g2 = g.reshape(len(rows), -1).double()
                kern += g2 @ g2.T
            del grads
        _check_features(z, net.name)
        if params != "backbone":
            jac = head_jacobian(z.detach(), net.head).double()
            kern += jac @ jac.T
        out[c] = float(torch.linalg.eigvalsh(kern.detach()).mean())
        if progress is not None:
            progress(int((sel_codes <= c).sum()), idx.shape[0])
    return out


# ----------------------------------------------------------------------------- public API
_CHUNK_PIXELS = 8 * 224 * 224


def default_chunk_size(image_shape) -> int:
    """Images per chunk for images of ``image_shape`` (C, H, W): a fixed budget of
    8 x 224 x 224 pixels (activation memory grows with the pixels), between 1 and 256."""
    pixels = int(np.prod(image_shape[1:])) if len(image_shape) > 1 else 1
    return int(max(1, min(256, _CHUNK_PIXELS // max(pixels, 1))))


def _validate(params, method, engine, feature_norm, samples_per_class, chunk_size):
    _choice(params, _PARAMS, "params")
    _choice(method, _METHODS, "method")
    _choice(engine, _ENGINES, "engine")
    _choice(feature_norm, _FEATURE_NORMS, "feature_norm")
    checks = [("samples_per_class", samples_per_class)]
    if chunk_size is not None:
        checks.append(("chunk_size", chunk_size))
    for arg, v in checks:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{arg} must be a positive integer, got {v!r}")


def network_ntk_parts(backbone: torch.nn.Module, images: ImagesArg, labels, *,
                      params: str = "all", samples_per_class: int = DEFAULT_SAMPLES_PER_CLASS,
                      head_widths: Sequence[int] = DEFAULT_HEAD_WIDTHS,
                      feature_norm: str = DEFAULT_HEAD_INPUT, feature_stats=None, chunk_size: int | None = None,
                      engine: str = "auto", sample_ids=None, n_classes: int | None = None,
                      random_state: int = 0, head_random_state: int | None = None, device="cpu",
                      dtype="float32", name: str | None = None,
                      progress: Callable[[int, int], None] | None = None) -> NetworkNTK:
    """The backbone and head shares of the whole-network lambda per class (``method="trace"``,
    exact); see :func:`network_ntk_eigenvalues` for the arguments."""
    return _run(backbone, images, labels, params=params, samples_per_class=samples_per_class,
                head_widths=head_widths, method="trace", feature_norm=feature_norm,
                feature_stats=feature_stats, chunk_size=chunk_size, engine=engine,
                sample_ids=sample_ids, n_classes=n_classes, random_state=random_state,
                head_random_state=head_random_state, device=device, dtype=dtype, name=name,
                progress=progress)


def network_ntk_eigenvalues(backbone: torch.nn.Module, images: ImagesArg, labels, *,
                            params: str = "all", samples_per_class: int = DEFAULT_SAMPLES_PER_CLASS,
                            head_widths: Sequence[int] = DEFAULT_HEAD_WIDTHS, method: str = "trace",
                            feature_norm: str = DEFAULT_HEAD_INPUT, feature_stats=None, chunk_size: int | None = None,
                            engine: str = "auto", sample_ids=None, n_classes: int | None = None,
                            random_state: int = 0, head_random_state: int | None = None,
                            device="cpu", dtype="float32", name: str | None = None,
                            progress: Callable[[int, int], None] | None = None,
                            features=None) -> np.ndarray:
    """``lambda_k`` (K,) float64: mean eigenvalue of the sum-of-logits NTK of ``F = h o f``
    over S samples of class k (LEAD, Hu et al., CVPR 2024, Eq. 3 and Sec. 4.1).

    backbone: ``nn.Module`` mapping a float image batch to pooled features (B, D) (a zoo
        :class:`~zoorank.zoo.Backbone` takes [0, 1] RGB at ``config.input_size``; its
        normalisation is inside it). Run in eval mode (its training flag is restored); never
        modified: its tensors are copied to ``device`` / ``dtype``.
    images: the dataset's images, row i labelled ``labels[i]``: a float tensor / array
        (N, C, H, W) already preprocessed for the backbone, or a callable ``rows -> tensor``
        returning those rows (int64 array of dataset rows) so that only the S x K chosen
        images are ever loaded (called once per chunk).
    labels: (N,). Classes are the sorted unique labels, or with ``n_classes`` the codes
        ``0..n_classes-1``, each of which must have an image (an empty class is an error).
    params: ``"all"`` (the paper's theta: backbone + head), ``"backbone"``, ``"head"`` (the
        head-only kernel on the features; needs no gradients, works for any model).
        ``all = backbone + head`` exactly (a sum over disjoint parameter sets). The backbone's
        parameters are those with ``requires_grad``.
    samples_per_class: S; a class with fewer images uses all (one works). The rows are those
        of :func:`select_ntk_samples` (``sample_ids``: the samples' identities, default rows).
    head_widths, random_state: :func:`~zoorank.metrics.lead.init_random_head`
        (``random_state`` also seeds the sample choice, as in the head-only NTK);
        ``head_random_state``: another seed for the head only (default ``random_state``).
    method: ``"trace"`` (exact mean squared per-sample gradient norm) or ``"eig"`` (explicit
        kernel, ``eigvalsh`` mean; small networks).
    feature_norm: head input: ``"none"`` (the paper: raw features), ``"l2"`` (unit rows, inside
        the differentiated network), ``"standard"`` (``(f - mean) / std`` with
        ``feature_stats=(mean, std)`` computed by the caller over all N features).
    chunk_size: images per forward/backward (bounds memory; results do not depend on it beyond
        rounding). ``None``: :func:`default_chunk_size`, 8 images at 224 x 224 (vgg16bn_craft
        then peaks at 2.3 GiB RSS on CPU, ``benchmarks/results/network_ntk.md``), more for smaller
        images, at most 256. engine: ``"auto"`` | ``"layers"`` | ``"vmap"`` (module docstring).
    name: the model's name in error messages (default ``backbone.config.model_id``).
    progress: ``progress(done, total)`` after each chunk.
    features: (N, D) the backbone's features of all N images (the pipeline's cached array): with
        ``feature_norm="standard"`` and no ``feature_stats``, the stats are their mean and std.
    """
    if feature_norm == "standard" and feature_stats is None and features is not None:
        moments = feature_moments(torch.as_tensor(np.asarray(features, dtype=np.float64)))
        feature_stats = tuple(m.numpy() for m in moments)
    return _run(backbone, images, labels, params=params, samples_per_class=samples_per_class,
                head_widths=head_widths, method=method, feature_norm=feature_norm,
                feature_stats=feature_stats, chunk_size=chunk_size, engine=engine,
                sample_ids=sample_ids, n_classes=n_classes, random_state=random_state,
                head_random_state=head_random_state, device=device, dtype=dtype, name=name,
                progress=progress, total_only=True)


def _run(backbone, images, labels, *, params, samples_per_class, head_widths, method, feature_norm,
         feature_stats, chunk_size, engine, sample_ids, n_classes, random_state, head_random_state,
         device, dtype, name, progress, total_only=False):
    _validate(params, method, engine, feature_norm, samples_per_class, chunk_size)
    if not isinstance(backbone, torch.nn.Module):
        raise TypeError(f"backbone must be a torch.nn.Module, got {type(backbone).__name__}")
    name = _model_name(backbone, name)
    tdtype = resolve_dtype(dtype)
    dev = torch.device(device)
    codes, k = _codes(labels, n_classes)
    load = _image_loader(images, codes.shape[0], name)
    idx = select_ntk_samples(codes, k, samples_per_class, sample_ids, random_state)
    sel_codes = codes[idx]
    was_training = backbone.training
    backbone.eval()
    try:
        net = _Network(backbone, name, params != "head", tdtype, dev, feature_norm, feature_stats)
        with torch.no_grad():           # D from one image, then the head
            first = _prepare_batch(load(idx[:1]), name, tdtype, dev)
            probe = net.features(first)
        if chunk_size is None:
            chunk_size = default_chunk_size(tuple(first.shape[1:]))
        dim = int(probe.shape[1])
        head_seed = random_state if head_random_state is None else head_random_state
        net.head = init_random_head(dim, k, head_widths, random_state=int(head_seed),
                                    dtype=tdtype, device=dev)
        if method == "eig":
            lam = _eig_means(net, load, idx, sel_codes, k, params, progress)
            _check_lambda(lam, name, params)
            return lam
        sample_back, sample_head, used = _trace_parts(net, load, idx, sel_codes, k, params,
                                                      int(chunk_size), engine, progress)
    finally:
        backbone.train(was_training)
    back, head = (_class_means(v, sel_codes, k) for v in (sample_back, sample_head))
    if params != "head" and not np.any(back > 0):
        raise ValueError(f"model {name!r} gives zero gradients w.r.t. all its parameters (a traced "
                         "or converted graph without autograd, or features computed under no_grad); "
                         "lambda would be silently the head's only. Use params='head'")
    if total_only:
        lam = back + head
        _check_lambda(lam, name, params)
        return lam
    return NetworkNTK(back, head, np.bincount(sel_codes, minlength=k), idx, used, dim,
                      sample_back, sample_head)


def _check_lambda(lam, name, params):
    bad = np.flatnonzero(~(np.isfinite(lam) & (lam > 0)))
    if bad.size:
        raise ValueError(f"model {name!r}: NTK eigenvalue of class(es) {bad[:10].tolist()} is "
                         f"{lam[bad[0]]!r} (params={params!r}); expected positive and finite")
