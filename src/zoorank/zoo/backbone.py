"""The :class:`Backbone` every zoo entry becomes: normalisation inside, pooled features out.

``forward(x)``: float ``(B, 3, H, W)`` RGB in [0, 1] at ``config.input_size`` ->
``(B, feature_dim)`` penultimate features. The colour conversion (RGB -> BGR / grey),
pixel scaling and mean/std normalisation are part of the module, so they are differentiable
and the feature extractor only ever feeds [0, 1] RGB.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .spec import ModelConfig
from .weights import sha256_file, state_dict_digest

__all__ = ["Backbone", "HEAD_ACTIVATIONS"]

# ITU-R BT.601 luma, as PIL's convert("L") (what torchvision's Grayscale uses too).
_GREY = (0.299, 0.587, 0.114)
HEAD_ACTIVATIONS = ("softmax", "sigmoid")


class Backbone(nn.Module):
    """A pretrained network cut at its penultimate layer, with its source-task head.

    Parameters
    ----------
    config: the model's :class:`ModelConfig`.
    body: module mapping *normalised* input to ``(B, feature_dim)`` features.
    head: optional module mapping features to source-task logits.
    head_activation: ``"softmax"`` (C logits -> C probabilities) or ``"sigmoid"``
        (1 logit -> 2 probabilities ``[1 - p, p]``).
    weights_file: the file the weights came from (for :meth:`weights_digest`); when ``None``
        the digest is computed from the state dict.
    fixed_input_size: the body only works at ``config.input_size`` (flatten + linear).
    """

    def __init__(
        self,
        config: ModelConfig,
        body: nn.Module,
        head: nn.Module | None = None,
        head_activation: str | None = None,
        *,
        weights_file: str | os.PathLike | None = None,
        fixed_input_size: bool = False,
    ) -> None:
        super().__init__()
        if (head is None) != (head_activation is None):
            raise ValueError("head and head_activation go together")
        if head_activation is not None and head_activation not in HEAD_ACTIVATIONS:
            raise ValueError(f"head_activation must be one of {HEAD_ACTIVATIONS}")
        self.config = config
        self.body = body
        self.head = head
        self.head_activation = head_activation
        self.fixed_input_size = fixed_input_size
        self.weights_file = Path(weights_file) if weights_file is not None else None
        self._digest: str | None = None
        shape = (1, len(config.mean), 1, 1)
        self.register_buffer("mean", torch.tensor(config.mean, dtype=torch.float32).view(shape),
                             persistent=False)
        self.register_buffer("std", torch.tensor(config.std, dtype=torch.float32).view(shape),
                             persistent=False)
        self.register_buffer("grey_weights", torch.tensor(_GREY, dtype=torch.float32)
                             .view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ input
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB ``(B, 3, H, W)`` -> the tensor the wrapped network expects."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self.config.model_id}: expected a torch.Tensor, "
                            f"got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.config.model_id}: expected input of shape (B, 3, H, W) "
                             f"(RGB in [0, 1]), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{self.config.model_id}: expected a float tensor in [0, 1], "
                             f"got {x.dtype}")
        if self.fixed_input_size and tuple(x.shape[-2:]) != tuple(self.config.input_size):
            raise ValueError(f"{self.config.model_id}: this network only accepts input_size "
                             f"{tuple(self.config.input_size)} (H, W), got {tuple(x.shape[-2:])}; "
                             "resize first")
        colour = self.config.colour
        if colour == "grey":
            x = (x * self.grey_weights.to(x.dtype)).sum(dim=1, keepdim=True)
        elif colour == "bgr":
            x = x.flip(1)
        if self.config.pixel_scale != 1.0:
            x = x * self.config.pixel_scale
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    # ------------------------------------------------------------------ outputs
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, feature_dim)`` pooled penultimate features."""
        feats = self.body(self.normalise(x))
        return feats.reshape(feats.shape[0], -1)

    def source_probabilities(self, features: torch.Tensor) -> torch.Tensor | None:
        """Source-task probabilities from features (``None`` when the model has no head)."""
        if self.head is None:
            return None
        logits = self.head(features)
        if self.head_activation == "sigmoid":
            p = torch.sigmoid(logits.reshape(logits.shape[0], -1)[:, :1])
            return torch.cat([1.0 - p, p], dim=1)
        return torch.softmax(logits, dim=1)

    def forward_with_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features and source-task *probabilities* ``(B, num_source_outputs)`` or ``None``."""
        feats = self.forward(x)
        return feats, self.source_probabilities(feats)

    # ------------------------------------------------------------------ identity
    def weights_digest(self) -> str:
        """sha256 of the weight file (or of the state dict when there is no single file)."""
        if self._digest is None:
            if self.weights_file is not None and self.weights_file.is_file():
                self._digest = sha256_file(self.weights_file)
            else:
                self._digest = state_dict_digest(self)
        return self._digest

    def extra_repr(self) -> str:
        c = self.config
        return (f"model_id={c.model_id!r}, input_size={c.input_size}, colour={c.colour!r}, "
                f"feature_dim={c.feature_dim}, source_task={c.source_task!r}")
