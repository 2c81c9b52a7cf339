"""Per-sample squared gradient norms ``||d s_i / d theta||^2`` of a network, two engines.

``s`` maps a batch ``(B, ...)`` to one scalar per sample, ``s_i`` depending on sample ``i``
only (a network in eval mode: BatchNorm uses its running statistics). Both engines return
``(B,)`` squared norms over the chosen parameters and the value of an auxiliary output.

- :func:`norms_by_layer` ("layers" engine): one batched forward and one batched backward,
  per-sample gradients of every parameter from closed forms per operation (Goodfellow 2015,
  "Efficient per-example gradient computations"; the grad-sampler idea of Opacus,
  ``pytorch/opacus`` ``opacus/grad_sample/conv.py``, read for comparison, not copied). The
  operations are intercepted with a :class:`torch.overrides.TorchFunctionMode`, so the actual
  arguments are seen whatever module wraps them (e.g. EfficientNet-Lite's static "same"
  padding): ``conv2d`` (weight: one grouped ``convolution_backward`` whose groups are the
  samples, or a batched matmul for 1x1 convolutions; bias: the spatial sum of the output
  gradient), ``linear`` (``g a^T`` summed over extra dimensions) and eval-mode
  ``batch_norm`` (weight: ``sum_p g_p xhat_p`` per channel; bias: ``sum_p g_p``). A
  parameter used by any other operation makes the engine refuse (:class:`Unsupported`); an
  output modified in place later (``ReLU(inplace=True)``) is fine, its gradient hook being
  registered before the modification,
  and the first batch is checked against autograd's batch gradient
  (``sum_i grad_i == grad(sum_i s_i)``), so nothing is silently left out.
- :func:`norms_by_vmap` ("vmap" engine): ``torch.func.vmap(torch.func.grad(...))`` over the
  samples with ``functional_call``: any differentiable network, explicit per-sample gradients
  (memory ``B x P``). Also returns the explicit gradients for kernel building.

Pure torch; no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["Unsupported", "norms_by_layer", "norms_by_vmap", "jacobian_by_vmap"]

# relative size of ||sum_i g_i - g_batch|| (float rounding) below which the check passes; a
# parameter use the engine missed changes the batch gradient by O(1) of its norm
_CHECK_RTOL = {torch.float32: 1e-3, torch.float64: 1e-9}


class Unsupported(RuntimeError):
    """The layer engine cannot compute this network's per-sample gradients exactly."""


# ----------------------------------------------------------------------------- layers engine
@dataclass
class _Call:
    kind: str                      # "conv2d" | "linear" | "batch_norm"
    inp: torch.Tensor              # the operation's input (detached)
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    opts: dict = field(default_factory=dict)
    inp_version: int = 0
    out_version: int = 0


_CONV = {torch.conv2d, F.conv2d}
_LINEAR = {F.linear, torch._C._nn.linear}
_BN = {F.batch_norm}


class _Recorder(TorchFunctionMode):
    """Records every call of a supported operation that uses a chosen parameter and hooks its
    output at once; marks the network unsupported when a chosen parameter reaches any other
    operation.

    The output's gradient hook is registered right after the operation, before any later
    in-place operation (e.g. ``ReLU(inplace=True)`` after BatchNorm) can modify the output: a
    tensor hook receives the gradient of the value the tensor had when it was registered."""

    def __init__(self, param_ids: set[int], on_grad):
        super().__init__()
        self.param_ids = param_ids
        self.on_grad = on_grad
        self.calls: list[_Call] = []
        self.problem: str | None = None

    def _uses_param(self, args, kwargs) -> bool:
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, torch.Tensor) and id(a) in self.param_ids:
                return True
            if isinstance(a, (list, tuple)):
                if any(isinstance(b, torch.Tensor) and id(b) in self.param_ids for b in a):
                    return True
        return False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self._uses_param(args, kwargs):
            return func(*args, **kwargs)
        call = self._describe(func, args, kwargs)
        out = func(*args, **kwargs)
        if call is None:
            if self.problem is None:
                self.problem = f"a chosen parameter is used by {getattr(func, '__name__', func)!r}"
            return out
        call.out_version = out._version
        call.inp_version = call.inp._version
        self.calls.append(call)
        if out.requires_grad:
            out.register_hook(lambda g, call=call: self.on_grad(call, g))
        return out

    def _describe(self, func, args, kwargs) -> _Call | None:
        def arg(i, name, default=None):
            if len(args) > i:
                return args[i]
            return kwargs.get(name, default)

        inp = arg(0, "input")
        if func in _CONV:
            if isinstance(inp, torch.Tensor) and id(inp) in self.param_ids:
                return None
            return _Call("conv2d", inp, arg(1, "weight"), arg(2, "bias"),
                         {"stride": arg(3, "stride", 1), "padding": arg(4, "padding", 0),
                          "dilation": arg(5, "dilation", 1), "groups": arg(6, "groups", 1)})
        if func in _LINEAR:
            if isinstance(inp, torch.Tensor) and id(inp) in self.param_ids:
                return None
            return _Call("linear", inp, arg(1, "weight"), arg(2, "bias"))
        if func in _BN:
            training = arg(5, "training", False)
            mean, var = arg(1, "running_mean"), arg(2, "running_var")
            if training or mean is None or var is None:
                self.problem = "batch_norm uses batch statistics (train mode or no running stats)"
                return None
            if any(isinstance(t, torch.Tensor) and id(t) in self.param_ids for t in (inp, mean, var)):
                return None
            return _Call("batch_norm", inp, arg(3, "weight"), arg(4, "bias"),
                         {"mean": mean, "var": var, "eps": arg(7, "eps", 1e-5)})
        return None


def _pair(v):
    return [int(v), int(v)] if isinstance(v, int) else [int(u) for u in v]


def _conv_weight_grads(call: _Call, g: torch.Tensor) -> torch.Tensor:
    """Per-sample conv2d weight gradients ``(B, *W.shape)``."""
    w, x, o = call.weight, call.inp, call.opts
    if isinstance(o["padding"], str):
        raise Unsupported("conv2d with string padding")
    b = x.shape[0]
    stride, padding, dilation = _pair(o["stride"]), _pair(o["padding"]), _pair(o["dilation"])
    groups = int(o["groups"])
    if w.shape[-2:] == (1, 1) and groups == 1 and stride == [1, 1] and padding == [0, 0]:
        # 1x1 convolution: a batched matmul over the pixels, no copy
        return torch.bmm(g.reshape(b, g.shape[1], -1),
                         x.reshape(b, x.shape[1], -1).transpose(1, 2)).view(b, *w.shape)
    # the samples become groups: one grouped weight-gradient convolution for the whole batch
    # (the batching rule functorch uses for convolution_backward)
    wb = w.detach().expand(b, *w.shape).reshape(b * w.shape[0], *w.shape[1:])
    _, gw, _ = torch.ops.aten.convolution_backward(
        g.reshape(1, b * g.shape[1], *g.shape[2:]), x.reshape(1, b * x.shape[1], *x.shape[2:]),
        wb, None, stride, padding, dilation, False, [0, 0], b * groups, [False, True, False])
    return gw.view(b, *w.shape)


def _call_grads(call: _Call, g: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(parameter, per-sample gradient (B, *parameter.shape))]`` of one operation."""
    b = g.shape[0]
    out = []
    if call.kind == "conv2d":
        if call.weight is not None and call.weight.requires_grad:
            out.append((call.weight, _conv_weight_grads(call, g)))
        if call.bias is not None and call.bias.requires_grad:
            out.append((call.bias, g.reshape(b, g.shape[1], -1).sum(dim=2)))
    elif call.kind == "linear":
        g3 = g.reshape(b, -1, g.shape[-1])
        if call.weight is not None and call.weight.requires_grad:
            a3 = call.inp.reshape(b, -1, call.inp.shape[-1])
            out.append((call.weight, torch.bmm(g3.transpose(1, 2), a3)))
        if call.bias is not None and call.bias.requires_grad:
            out.append((call.bias, g3.sum(dim=1)))
    else:  # batch_norm, eval: y = xhat * w + b, xhat = (x - mean) / sqrt(var + eps)
        o = call.opts
        shape = (1, -1) + (1,) * (call.inp.ndim - 2)
        g3 = g.reshape(b, g.shape[1], -1)
        if call.weight is not None and call.weight.requires_grad:
            xhat = (call.inp - o["mean"].view(shape)) * torch.rsqrt(o["var"].view(shape) + o["eps"])
            out.append((call.weight, (g3 * xhat.reshape(b, g.shape[1], -1)).sum(dim=2)))
        if call.bias is not None and call.bias.requires_grad:
            out.append((call.bias, g3.sum(dim=2)))
    return out


def norms_by_layer(fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                   x: torch.Tensor, params: list[torch.Tensor], *, check: bool = False):
    """Per-sample ``||d s_i / d params||^2`` (B,) and ``aux`` for ``s, aux = fn(x)``.

    ``params``: the leaf tensors (``requires_grad``) that ``fn`` uses through its modules
    (e.g. the tensors given to ``functional_call``). ``check``: also compare the summed
    per-sample gradients with autograd's batch gradient (one extra weight-gradient pass) and
    check that parameters no intercepted operation used have zero gradient.
    """
    ids = {id(p) for p in params}
    b = x.shape[0]
    sq = torch.zeros(b, dtype=torch.float64, device=x.device)
    n_uses: dict[int, int] = {}
    shared: dict[int, torch.Tensor] = {}      # parameters used by several calls: summed first
    batch_sums: dict[int, torch.Tensor] = {}

    active = [True]                          # hooks fire again in the check's backward: ignore

    def on_grad(call: _Call, g: torch.Tensor):
        if not active[0]:
            return
        for p, gp in _call_grads(call, g.detach()):
            if check:
                batch_sums[id(p)] = batch_sums.get(id(p), 0) + gp.sum(dim=0)
            if n_uses[id(p)] == 1:
                sq.add_(gp.reshape(b, -1).double().square().sum(dim=1))
            else:
                shared[id(p)] = shared.get(id(p), 0) + gp
        call.inp = None                        # free the saved input as the backward proceeds

    rec = _Recorder(ids, on_grad)
    x = x.detach().requires_grad_(True)      # the backward runs down to x (cheap), no weight grads
    with rec:
        s, aux = fn(x)
    if rec.problem is not None:
        raise Unsupported(rec.problem)
    for c in rec.calls:
        if c.inp._version != c.inp_version:
            raise Unsupported("an operation's input was modified in place after use")
        for p in (c.weight, c.bias):
            if p is not None and id(p) in ids:
                n_uses[id(p)] = n_uses.get(id(p), 0) + 1
    if not s.requires_grad:
        raise Unsupported("the output does not depend on the parameters (no autograd graph)")
    torch.autograd.grad(s.sum(), [x], retain_graph=check, allow_unused=True)
    active[0] = False
    for gp in shared.values():
        sq.add_(gp.reshape(b, -1).double().square().sum(dim=1))
    if check:
        _check_batch_gradient(s, params, n_uses, batch_sums, x.dtype)
    return sq, aux.detach()


def _check_batch_gradient(s, params, n_uses, batch_sums, dtype):
    """``sum_i grad_i`` must equal autograd's ``grad(sum_i s_i)`` for every parameter."""
    full = torch.autograd.grad(s.sum(), params, allow_unused=True)
    tol = _CHECK_RTOL.get(dtype, 1e-3)
    for p, gb in zip(params, full):
        gb = torch.zeros_like(p) if gb is None else gb
        if id(p) not in n_uses:   # no intercepted operation used it: it must not matter
            if float(gb.abs().max()) > 0:
                raise Unsupported("a parameter reaches the output through an operation the "
                                  "layer engine does not intercept")
            continue
        mine = batch_sums.get(id(p), torch.zeros_like(p))
        err = float(torch.linalg.vector_norm((mine - gb).double()))
        ref = float(torch.linalg.vector_norm(gb.double()))
        if err > tol * ref + 1e-30:
            raise Unsupported(f"per-sample gradients do not sum to the batch gradient "
                              f"(relative error {err / max(ref, 1e-300):.2e})")


# ----------------------------------------------------------------------------- vmap engine
def _vmapped_grads(fn_single, params: dict[str, torch.Tensor], x: torch.Tensor):
    from torch.func import grad, vmap

    return vmap(grad(fn_single, has_aux=True), in_dims=(None, 0))(params, x)


def norms_by_vmap(fn_single, params: dict[str, torch.Tensor], x: torch.Tensor):
    """Per-sample ``||d s / d params||^2`` (B,) and aux, ``s, aux = fn_single(params, x_i)``
    for one sample ``x_i`` (no batch dimension), by ``vmap(grad(...))``."""
    grads, aux = _vmapped_grads(fn_single, params, x)
    sq = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for g in grads.values():
        sq.add_(g.detach().reshape(x.shape[0], -1).double().square().sum(dim=1))
    return sq, aux.detach()


def jacobian_by_vmap(fn_single, params: dict[str, torch.Tensor], x: torch.Tensor):
    """Explicit per-sample gradients ``{name: (B, *shape)}`` and aux (reference path)."""
    return _vmapped_grads(fn_single, params, x)
