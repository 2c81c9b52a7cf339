"""Safe weight-file handling shared by every backbone family.

- packages are located with ``importlib.util.find_spec`` (no import: several weight carriers
  import tensorflow / cv2 / torchvision at import time);
- torch files are read with ``torch.load(..., weights_only=True)`` only (no pickled code);
- a state dict is checked against the architecture *before* loading, and a mismatch is a
  ``ValueError`` naming the file and the first missing / unexpected / mis-shaped keys;
- digests (sha256) of weight files and state dicts serve as cache keys.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "MissingPackageError",
    "package_dir",
    "package_file",
    "load_torch_file",
    "is_torchscript",
    "load_torchscript_state_dict",
    "extract_state_dict",
    "check_state_dict",
    "load_state_dict_checked",
    "sha256_file",
    "state_dict_digest",
]

SETUP_HINT = "run scripts/setup.sh"


class MissingPackageError(ImportError):
    """A package that carries weights (or code) for a backbone is not installed."""


def package_dir(module: str, pip_spec: str, *, no_deps: bool = True) -> Path:
    """Folder of an installed package, found without importing it.

    Raises :class:`MissingPackageError` with the exact pip command when it is missing.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        flag = "--no-deps " if no_deps else ""
        raise MissingPackageError(
            f"package {pip_spec.split('==')[0]!r} (module {module!r}) is not installed: "
            f"`pip install {flag}{pip_spec}` (or {SETUP_HINT})"
        )
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent  # single-module distribution


def package_file(module: str, pip_spec: str, *parts: str, no_deps: bool = True) -> Path:
    """A file shipped inside an installed package; a clear error when it is absent."""
    path = package_dir(module, pip_spec, no_deps=no_deps).joinpath(*parts)
    if not path.is_file():
        flag = "--no-deps " if no_deps else ""
        raise FileNotFoundError(
            f"{path} is missing from the installed package {pip_spec.split('==')[0]!r}; "
            f"reinstall it: `pip install --force-reinstall {flag}{pip_spec}` (or {SETUP_HINT})"
        )
    return path


def is_torchscript(path: str | os.PathLike) -> bool:
    """True when ``path`` is a TorchScript archive (zip with ``code/`` and ``constants.pkl``)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def load_torch_file(path: str | os.PathLike) -> object:
    """``torch.load`` with ``weights_only=True`` on CPU, with readable errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{path}: not loadable with weights_only=True (it pickles Python objects, which "
            f"zoorank refuses to execute); save a plain state dict instead "
            f"(torch.save(model.state_dict(), ...)). Details: {str(exc).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable torch weights file "
                         f"({type(exc).__name__}: {exc})") from None


def load_torchscript_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Parameters and buffers of a TorchScript archive (its code is not run)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
            scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError / various C++ errors
        raise ValueError(f"{path}: not a readable TorchScript file: {exc}") from None
    return {k: v.detach().clone() for k, v in scripted.state_dict().items()}


_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "state_dict_ema",
                "model_ema")


def _is_tensor_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def extract_state_dict(obj: object, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint.

    Accepts a plain ``{name: tensor}`` dict or one nested under a usual key
    (``state_dict``, ``model``, ``model_state_dict``, ...). A ``module.`` prefix that every
    key carries (DataParallel) is removed.
    """
    sd = obj
    if not _is_tensor_dict(sd) and isinstance(sd, Mapping):
        for key in _NESTED_KEYS:
            if key in sd and _is_tensor_dict(sd[key]):
                sd = sd[key]
                break
    if not _is_tensor_dict(sd):
        what = (f"a dict with keys {sorted(map(str, sd))[:6]}" if isinstance(sd, Mapping)
                else type(sd).__name__)
        raise ValueError(f"{path}: expected a state dict ({{name: tensor}}), found {what}")
    sd = dict(sd)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _first(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... (+{len(keys) - n} more)" if len(keys) > n else "")


def check_state_dict(module: nn.Module, state_dict: Mapping[str, torch.Tensor],
                     source: str | os.PathLike) -> None:
    """Raise ``ValueError`` naming ``source`` and the first offending keys on any mismatch."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mis_shaped = [
        f"{k} (file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_first(unexpected)}")
        if mis_shaped:
            parts.append(f"shape mismatches ({len(mis_shaped)}): {_first(mis_shaped, 3)}")
        raise ValueError(
            f"weights file {source} does not match the architecture "
            f"{type(module).__name__}: " + "; ".join(parts)
        )


def load_state_dict_checked(module: nn.Module, state_dict: Mapping[str, torch.Tensor],
                            source: str | os.PathLike) -> nn.Module:
    """Strictly load ``state_dict`` into ``module`` after :func:`check_state_dict`."""
    check_state_dict(module, state_dict, source)
    module.load_state_dict(state_dict, strict=True)
    return module


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file (memoised on path, size and mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _FILE_DIGESTS[key] = h.hexdigest()
    return _FILE_DIGESTS[key]


def state_dict_digest(module: nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a module's state dict."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
