"""LEAD's NTK over the random head only (``params="head"``, a named deviation from the paper's
whole-network kernel, :mod:`zoorank.metrics.lead.network_ntk`): the head
``h`` (Kaiming MLP, widths 1024, 2048, K outputs) on the features, sum-of-logits kernel
(Mohamadi & Sutherland, arXiv 2206.12543) ``Phi_uv = grad_theta s(z_u) . grad_theta s(z_v)``,
``s = sum_j h_j``; ``lambda_k`` = mean eigenvalue over S samples of class k = trace / S, exact in
closed form (a linear layer's weight gradient is ``g a^T``: squared norm ``||g||^2 ||a||^2``).
Units and expectation (``E = K (2560 ||z||^2 / D + ||z||^2 / 2 + 2)``): ``docs/lead.md``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from zoorank.metrics._common import sample_keys
from zoorank.metrics.lead.evolution import _choice
from zoorank.metrics.lead.sampling import ntk_sample_rows
from zoorank.metrics.lead.tensors import _FEATURE_NORMS, normalise_features, resolve_dtype, to_torch
from zoorank.metrics.validation import Checked, check_features_labels

DEFAULT_HEAD_WIDTHS = (1024, 2048)
DEFAULT_SAMPLES_PER_CLASS = 64
DEFAULT_HEAD_INPUT = "none"          # the paper: raw backbone features into the head
_NTK_METHODS = ("trace", "eig")


# ----------------------------------------------------------------------------- stage 2: NTK
def init_random_head(in_dim: int, n_outputs: int, head_widths: Sequence[int] = DEFAULT_HEAD_WIDTHS,
                     *, random_state: int = 0, dtype="float32", device="cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random MLP head ``[(W_1, b_1), ..., (W_{L+1}, b_{L+1})]``, ``W_l`` (out, in).

    Kaiming (He) normal init: ``N(0, 2/fan_in)`` for the layers followed by a ReLU,
    ``N(0, 1/fan_in)`` (linear gain) for the output layer; zero biases. Drawn in float64 on
    the CPU from ``torch.Generator().manual_seed(random_state)``, then cast, so the head
    is the same on every device and in every dtype (up to the cast).
    """
    widths = tuple(int(w) for w in head_widths)
    if len(widths) == 0 or min(widths) < 1:
        raise ValueError(f"head_widths must be a non-empty sequence of positive widths, got {head_widths!r}")
    tdtype = resolve_dtype(dtype)
    gen = torch.Generator(device="cpu").manual_seed(int(random_state))
    dims = (int(in_dim), *widths, int(n_outputs))
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        gain = math.sqrt(2.0) if i < len(dims) - 2 else 1.0
        w = torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float64) * (gain / math.sqrt(fan_in))
        layers.append((w.to(device=device, dtype=tdtype),
                       torch.zeros(fan_out, dtype=tdtype, device=device)))
    return layers


def _head_pieces(x: torch.Tensor, head):
    """Inputs ``a_{l-1}`` and backprop signals ``delta_l = d(sum_j h_j)/dz_l`` of every layer.

    ``z_l = a_{l-1} W_l^T + b_l``, ``a_l = relu(z_l)``; for the output layer delta = 1 (K,).
    ReLU'(0) = 0, as in torch's autograd.
    """
    acts = [x]
    masks = []
    a = x
    for w, b in head[:-1]:
        z = a @ w.T + b
        masks.append(z > 0)
        a = torch.relu(z)
        acts.append(a)
    w_out = head[-1][0]
    delta = w_out.sum(dim=0).expand(x.shape[0], -1)       # 1_K^T W_out, same for every sample
    deltas = [None] * len(head)
    for layer in range(len(head) - 2, -1, -1):
        delta = delta * masks[layer]
        deltas[layer] = delta
        if layer > 0:
            delta = delta @ head[layer][0]
    return acts, deltas


def head_ntk_diag(x: torch.Tensor, head, *, chunk_size: int = 4096) -> torch.Tensor:
    """``||grad_theta sum_j h_j(x_i)||^2`` for every row (N,), exact, in closed form:
    ``sum_l ||delta_l||^2 (||a_{l-1}||^2 + 1)`` (output layer: ``K (||a_L||^2 + 1)``)."""
    k = head[-1][0].shape[0]
    out = []
    for s in range(0, x.shape[0], chunk_size):
        acts, deltas = _head_pieces(x[s:s + chunk_size], head)
        sq = [torch.einsum("ij,ij->i", a, a) + 1.0 for a in acts]
        tot = k * sq[-1]
        for layer, d in enumerate(deltas[:-1]):
            tot = tot + torch.einsum("ij,ij->i", d, d) * sq[layer]
        out.append(tot)
    return torch.cat(out)


def head_ntk_gram(x: torch.Tensor, head) -> torch.Tensor:
    """Sum-of-logits NTK Gram (N, N) of the head, exact, in closed form:
    ``sum_l (Delta_l Delta_l^T) * (A_{l-1} A_{l-1}^T + 1)`` (output layer: ``K (A_L A_L^T + 1)``)."""
    k = head[-1][0].shape[0]
    acts, deltas = _head_pieces(x, head)
    gram = k * (acts[-1] @ acts[-1].T + 1.0)
    for layer, d in enumerate(deltas[:-1]):
        gram = gram + (d @ d.T) * (acts[layer] @ acts[layer].T + 1.0)
    return gram


def head_jacobian(x: torch.Tensor, head) -> torch.Tensor:
    """Explicit per-sample gradients (N, P) of ``sum_j h_j(x_i)`` w.r.t. all head parameters
    (order W_1, b_1, W_2, b_2, ...), by ``torch.func.vmap(torch.func.grad(...))``."""
    from torch.func import grad, vmap

    params = tuple(p for layer in head for p in layer)

    def sum_logits(flat, xi):
        a = xi
        n_layers = len(flat) // 2
        for i in range(n_layers):
            a = a @ flat[2 * i].T + flat[2 * i + 1]
            if i < n_layers - 1:
                a = torch.relu(a)
        return a.sum()

    grads = vmap(grad(sum_logits), in_dims=(None, 0))(params, x)
    return torch.cat([g.reshape(x.shape[0], -1) for g in grads], dim=1)


def _class_ntk_checked(chk: Checked, *, samples_per_class: int, head_widths, method: str,
                       feature_norm: str, random_state: int, dtype, device,
                       base_keys: np.ndarray | None = None, sample_ids=None) -> np.ndarray:
    _choice(method, _NTK_METHODS, "method")
    _choice(feature_norm, _FEATURE_NORMS, "feature_norm")
    if not isinstance(samples_per_class, (int, np.integer)) or samples_per_class < 1:
        raise ValueError(f"samples_per_class must be a positive integer, got {samples_per_class!r}")
    tdtype = resolve_dtype(dtype)
    codes, k = chk.labels, chk.n_classes
    keys = sample_keys(codes.shape[0], sample_ids, random_state) if base_keys is None else base_keys
    idx = ntk_sample_rows(codes, keys, int(samples_per_class))
    sel_codes = codes[idx]
    if feature_norm == "standard":                     # statistics of all N rows
        x = normalise_features(to_torch(chk.features, tdtype, device), "standard")[
            torch.as_tensor(idx, device=device)]
    else:
        x = normalise_features(to_torch(chk.features[idx], tdtype, device), feature_norm)
    head = init_random_head(x.shape[1], k, head_widths, random_state=random_state,
                            dtype=tdtype, device=device)
    eig = np.empty(k)
    with torch.no_grad():
        if method == "trace":
            diag = head_ntk_diag(x, head).to(torch.float64).cpu().numpy()
            eig[:] = np.bincount(sel_codes, weights=diag, minlength=k) / np.bincount(sel_codes, minlength=k)
            return eig
    for c in range(k):
        rows = torch.as_tensor(np.flatnonzero(sel_codes == c), device=device)
        jac = head_jacobian(x[rows], head)
        with torch.no_grad():
            phi = jac @ jac.T
            eig[c] = float(torch.linalg.eigvalsh(phi.to(torch.float64)).mean())
        del jac
    return eig


def class_ntk_eigenvalues(features, labels, samples_per_class: int = DEFAULT_SAMPLES_PER_CLASS,
                          head_widths: Sequence[int] = DEFAULT_HEAD_WIDTHS, method: str = "trace",
                          feature_norm: str = DEFAULT_HEAD_INPUT, random_state: int = 0, device="cpu",
                          dtype="float32", sample_ids=None) -> np.ndarray:
    """LEAD's class NTK (Hu et al., CVPR 2024, class-aware decomposition before Eq. 7) over the
    head's parameters only (the deviation ``params="head"``): ``lambda_k`` (K,) float64 = mean
    eigenvalue of the S x S sum-of-logits NTK of a random Kaiming MLP head on the features
    (head input ``feature_norm``), over S samples of class k (order = sorted unique labels).

    ``method="trace"``: exact closed-form trace / S (mean per-sample squared gradient
    norm); ``method="eig"``: explicit Jacobian -> kernel -> ``eigvalsh`` mean. Both agree to
    rounding. S samples are drawn by a seeded rule on ``sample_ids`` (the samples' identities;
    default: row positions); a class with fewer than S samples uses all of them (one works).
    """
    chk = check_features_labels(features, labels)
    return _class_ntk_checked(chk, samples_per_class=samples_per_class, head_widths=head_widths,
                              method=method, feature_norm=feature_norm, random_state=random_state,
                              dtype=dtype, device=device, sample_ids=sample_ids)
