"""Torch helpers shared by LEAD's SVM and NTK stages: dtype names, array -> tensor, and the
feature normalisations (``"standard"``, ``"l2"``, ``"none"``; ``docs/lead.md``)."""
from __future__ import annotations

import numpy as np
import torch

from zoorank.metrics.lead.evolution import _choice

_FEATURE_NORMS = ("standard", "l2", "none")


def resolve_dtype(dtype) -> torch.dtype:
    """``"float32"``/``"float64"`` (or the torch dtypes) -> torch dtype."""
    table = {"float32": torch.float32, "float64": torch.float64,
             torch.float32: torch.float32, torch.float64: torch.float64}
    try:
        return table[dtype]
    except (KeyError, TypeError):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None


def to_torch(x: np.ndarray, dtype: torch.dtype, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)


def feature_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation over the rows (constant dimensions -> std 1)."""
    mean = x.mean(dim=0)
    # sqrt(mean of squares) of the centred copy: ``Tensor.std(dim=0)`` took 4-6 s on
    # 50,000 x 2048 float32 on the AMD CI machine, this 1 s (benchmarks/results/metrics.md)
    std = (x - mean).square().mean(dim=0).sqrt()
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def normalise_features(x: torch.Tensor, feature_norm: str) -> torch.Tensor:
    """``"standard"``: per-dimension z-score over all rows (constant dimensions -> 0);
    ``"l2"``: unit-norm rows (zero rows stay zero); ``"none"``: unchanged."""
    _choice(feature_norm, _FEATURE_NORMS, "feature_norm")
    if feature_norm == "standard":
        centred = x - x.mean(dim=0)
        std = centred.square().mean(dim=0).sqrt()
        return centred.div_(torch.where(std > 0, std, torch.ones_like(std)))
    if feature_norm == "l2":
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        return x / torch.where(norm > 0, norm, torch.ones_like(norm))
    return x
