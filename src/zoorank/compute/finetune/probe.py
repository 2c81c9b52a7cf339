"""The linear probe: multinomial logistic regression on frozen, standardised features, its L2
strength C chosen on the validation split. It is LP-FT's head initialisation (Kumar et al.,
"Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution", ICLR 2022)
and, by itself, a cheap second ground truth (its test accuracy is reported beside the
fine-tuned one).

Features are standardised per dimension with the training features' mean and standard deviation
(kept as fixed constants in front of the head, :class:`zoorank.compute.finetune.trial.Classifier`), so
one C grid and one learning-rate grid fit backbones whose feature norms differ by 100x (HED's raw
0-255 input gives ||z||^2 ~ 5e4, the ImageNet nets ~ 300).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .data import SplitData, accuracies, batched


@dataclass
class ProbeResult:
    """Standardisation constants, the head (K x D weight, K bias), the chosen C, accuracies."""

    mean: list
    scale: list
    weight: list
    bias: list
    C: float
    val_top1: float
    val_mean_class: float
    test_top1: float
    test_mean_class: float
    val_by_C: dict = field(default_factory=dict)
    seconds: float = 0.0
    input_size: tuple = ()
    cpu_seconds: float = 0.0    # CPU time of the calling thread (wall time is ``seconds``)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    def summary(self) -> dict:
        """Everything but the head arrays (a small record)."""
        return {k: v for k, v in self.as_dict().items() if k not in HEAD_FIELDS}


HEAD_FIELDS = ("mean", "scale", "weight", "bias")


def head_array(probe: ProbeResult | dict) -> np.ndarray:
    """The probe's head packed as one float64 array (K + 2, D + 1): row 0 the feature mean, row 1
    the scale (last column 0), rows 2.. ``[weight | bias]``."""
    p = probe.as_dict() if isinstance(probe, ProbeResult) else probe
    w, b = np.asarray(p["weight"], dtype=np.float64), np.asarray(p["bias"], dtype=np.float64)
    top = np.stack([np.append(np.asarray(p["mean"], dtype=np.float64), 0.0),
                    np.append(np.asarray(p["scale"], dtype=np.float64), 0.0)])
    return np.vstack([top, np.hstack([w, b[:, None]])])


def head_from_array(arr: np.ndarray) -> dict:
    """Inverse of :func:`head_array`: ``{"mean", "scale", "weight", "bias"}`` as lists."""
    arr = np.asarray(arr, dtype=np.float64)
    return {"mean": arr[0, :-1].tolist(), "scale": arr[1, :-1].tolist(), "weight": arr[2:, :-1].tolist(),
            "bias": arr[2:, -1].tolist()}


def standardiser(train_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and scale (std; 1 where a dimension is constant) of the training features."""
    mean = train_features.mean(0)
    std = train_features.std(0)
    return mean, np.where(std > 1e-8 * max(1.0, float(np.abs(train_features).max())), std, 1.0)


def fit_probe(train_z: np.ndarray, train_y: np.ndarray, val_z: np.ndarray, val_y: np.ndarray,
              n_classes: int, cs=(0.01, 0.1, 1.0, 10.0)) -> tuple[float, np.ndarray, np.ndarray, dict]:
    """Logistic regression (lbfgs, multinomial) for each C on standardised features; the C with
    the best validation top-1 (ties -> the smaller C, the stronger regularisation). Returns
    ``(C, weight (K, D), bias (K,), {C: val_top1})``; classes absent from training get weight 0
    and a bias of -30 (never predicted)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    present = np.unique(train_y)
    if present.size < 2:
        raise ValueError(f"linear probe: the training subset has {present.size} class(es); need >= 2")
    best = None
    val_by_c = {}
    model = LogisticRegression(max_iter=300, tol=1e-4, warm_start=True)   # C ascending, warm-started
    for c in sorted(float(v) for v in cs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.set_params(C=c).fit(train_z, train_y)
        acc = float(np.mean(model.predict(val_z) == val_y))
        val_by_c[repr(c)] = acc
        if best is None or acc > best[0]:
            best = (acc, c, model.coef_.copy(), model.intercept_.copy())
    _, c, coef, icpt = best
    weight = np.zeros((n_classes, train_z.shape[1]), dtype=np.float64)
    bias = np.full(n_classes, -30.0)
    if present.size == 2:            # sklearn's binary form: one row for class present[1]
        coef = np.vstack([-coef / 2, coef / 2])
        icpt = np.array([-icpt[0] / 2, icpt[0] / 2])
    weight[present] = coef
    bias[present] = icpt
    return c, weight, bias, val_by_c


def linear_probe(backbone: torch.nn.Module, data: SplitData, size, device, *, cs=(0.01, 0.1, 1.0, 10.0),
                 batch_size: int = 128) -> ProbeResult:
    """Features of ``backbone`` (eval mode, as given: re-estimate BatchNorm first) on the three
    splits, standardised, then :func:`fit_probe`; accuracies of the probe on val and test."""
    start, start_cpu = time.perf_counter(), time.thread_time()
    backbone.eval()
    amp = torch.device(device).type == "cuda"
    feats = {name: batched(backbone, x, size, device, batch_size=batch_size, amp=amp).double().numpy()
             for name, x in (("train", data.train_x), ("val", data.val_x), ("test", data.test_x))}
    for name, z in feats.items():
        if not np.all(np.isfinite(z)):
            raise ValueError(f"linear probe: backbone produced NaN/inf features on the {name} split")
    mean, scale = standardiser(feats["train"])
    std = {k: (z - mean) / scale for k, z in feats.items()}
    c, weight, bias, val_by_c = fit_probe(std["train"], data.train_y, std["val"], data.val_y, data.n_classes, cs)
    accs = {}
    for name, y in (("val", data.val_y), ("test", data.test_y)):
        pred = np.argmax(std[name] @ weight.T + bias, axis=1)
        accs[name] = accuracies(pred, y, data.n_classes)
    return ProbeResult(mean.tolist(), scale.tolist(), weight.tolist(), bias.tolist(), c, *accs["val"], *accs["test"],
                       val_by_c, time.perf_counter() - start, tuple(size),
                       time.thread_time() - start_cpu)
